"""An upstream for the guardrail tests: resources and results that carry their text as blobs, and reads it counts.

`python tests/servers/contents_server.py [--http PORT]` (stdio by default). Every blob holds the same sentence with
an email address in it, under a textual media type (JSON, `text/csv; charset=latin-1`) or a binary one (PNG); the
`counted` resource and prompt echo their argument and count how often they were asked, which `asked` tells, so a
test can see that a blocked request never reached this server. `heard` lists what the client's completion requests
(argument value and context) and resource (un)subscriptions brought, in order, for the same purpose.
"""

from __future__ import annotations

import base64
from typing import Any

import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp_types import BlobResourceContents, EmbeddedResource, ImageContent

from mcp_hub.demo_server import serve

SENTENCE = "contact jo@example.com today"
ASKED = {"resource": 0, "prompt": 0}
HEARD: list[str] = []


def _blob(text: str, encoding: str = "utf-8") -> str:
    return base64.b64encode(text.encode(encoding)).decode("ascii")


def build_contents() -> MCPServer:
    server = MCPServer("contents", version="1.0.0")

    @server.resource("files://notes.json", name="notes", mime_type="application/json")
    def notes() -> bytes:
        return ('{"note": "' + SENTENCE + '"}').encode()

    @server.resource("files://names.csv", name="names", mime_type="text/csv; charset=latin-1")
    def names() -> bytes:
        return f"José,{SENTENCE}".encode("latin-1")

    @server.resource("files://photo.png", name="photo", mime_type="image/png")
    def photo() -> bytes:
        return b"\x89PNG\r\n" + SENTENCE.encode()

    @server.resource("files://counted/{value}", name="counted", mime_type="text/plain")
    def counted(value: str) -> str:
        ASKED["resource"] += 1
        return f"you asked for {value}"

    @server.prompt()
    def counted_prompt(value: str) -> str:
        """Echo the value (and count the ask)."""
        ASKED["prompt"] += 1
        return f"you asked for {value}"

    @server.tool()
    def asked() -> dict[str, int]:
        """How often the counted resource and prompt were asked for."""
        return dict(ASKED)

    @server.tool()
    def heard() -> list[str]:
        """What completion and (un)subscribe requests brought: `complete <value> <context>`, `subscribe <uri>`."""
        return list(HEARD)

    @server.completion()
    async def complete(
        ref: Any, argument: types.CompletionArgument, context: types.CompletionContext | None
    ) -> types.Completion:
        resolved = sorted((context.arguments or {}).items()) if context is not None else []
        HEARD.append(f"complete {argument.value} {resolved}")
        return types.Completion(values=[argument.value])

    async def subscribe(ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        HEARD.append(f"subscribe {params.uri}")
        return types.EmptyResult()

    async def unsubscribe(ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        HEARD.append(f"unsubscribe {params.uri}")
        return types.EmptyResult()

    lowlevel = server._lowlevel_server  # MCPServer has no decorator for these (a 2025-era hub asks for them)
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)

    @server.tool()
    def attachments() -> list[EmbeddedResource | ImageContent]:
        """The sentence as a JSON attachment, and as an image."""
        json_blob = BlobResourceContents(uri="files://a.json", mime_type="application/json", blob=_blob(SENTENCE))
        return [
            EmbeddedResource(type="resource", resource=json_blob),
            ImageContent(type="image", data=_blob(SENTENCE), mime_type="image/png"),
        ]

    return server


if __name__ == "__main__":
    serve(build_contents())
