"""uvicorn's server, taking in the connections already queued on its listening sockets before it closes them.

At shutdown uvicorn closes its listening sockets at once. A connection the kernel had completed but the event loop
had not accepted yet is then reset, after its client may have sent a request; a load balancer (nginx's
`proxy_next_upstream error`) retries a refused connection on another replica but not a POST it has sent, so a
rolling restart under load lost a request now and then. `DrainingServer` accepts every queued connection and closes
the listeners in one step (no await in between, so none can queue after the last accept), hands each connection to
the usual protocol, and then shuts down as uvicorn does: each connection finishes its request, and one with no
request yet gets `http_guard.SHUTDOWN_GRACE` for it to arrive.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn

logger = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        queued = self.close_listeners()
        if queued:
            logger.info("shutdown: serving %d connections that were queued on the listening sockets", len(queued))
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.connect_accepted_socket(self.protocol, sock) for sock in queued))
        await super().shutdown(sockets)

    def close_listeners(self) -> list[socket.socket]:
        """Accept whatever is queued on each listening socket, then close it; returns the accepted sockets."""
        queued: list[socket.socket] = []
        for server in self.servers:
            for listening in server.sockets:
                # A second handle on the same socket: asyncio's wrapper does not accept.
                handle = socket.socket(fileno=listening.fileno())
                try:
                    handle.setblocking(False)
                    while True:
                        try:
                            sock, _ = handle.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        sock.setblocking(False)
                        queued.append(sock)
                finally:
                    handle.detach()  # the fd stays asyncio's, which closes it just below
            server.close()
        return queued

    def protocol(self) -> asyncio.Protocol:
        """A connection's protocol, made as uvicorn makes it for the connections it accepts itself."""
        config = self.config
        made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return made
