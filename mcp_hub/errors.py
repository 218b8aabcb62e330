"""Errors of the MCP hub, on top of the governance core's typed denials::

    GatewayError (toolpolicy.errors)        status  JSON-RPC
    ├── InvalidRequest                       400     -32602
    │   └── PayloadTooLarge                  413              a body over `mcp.max_body_bytes` (toolpolicy's)
    ├── NotFound                             404     -32602
    │   ├── UnknownTool      a tool that does not exist, or that the key may not see: one answer for both
    │   │   └── CodeModeOnly a tool the key uses through Code Mode, called directly: says how to reach it
    │   ├── UnknownPrompt
    │   ├── UnknownResource
    │   ├── UnknownServer    `/mcp/<server>` for a server that is not configured (or is disabled)
    │   └── UnknownBundle    `?bundle=<name>` on the REST routes for a bundle that is not configured
    └── UpstreamError                        502     -32603   the upstream failed or answered garbage
        ├── UpstreamRejected                 502     (the upstream's own code)   it answered with a JSON-RPC error
        ├── UpstreamUnavailable              503     -32000   not connected: names the server and its state
        ├── UpstreamTimeout                  504     -32001   no answer within the server's `timeout`
        ├── UpstreamAuthFailed               502     -32603   the hub could not get an OAuth token for the server
        └── AuthorizationRequired            401     -32000   this key's owner has not authorized the server yet

Tool calls turn upstream errors into `isError` results (the model reads them); the other methods answer them as
JSON-RPC errors. Each edge renders these once, from their attributes.
"""

from __future__ import annotations

from typing import Any

from toolpolicy.errors import GatewayError, NotFound


class UnknownTool(NotFound):
    code = "tool_not_found"

    def __init__(self, name: str, *, hidden: bool = False, hint: str = "") -> None:
        super().__init__(f"Unknown tool: {name}{hint}", param="name")
        self.hidden = hidden
        """The tool exists but the caller may not use it: only the audit record says so."""

    @property
    def reason(self) -> str:
        return "tool_not_allowed" if self.hidden else "tool_not_found"


class CodeModeOnly(UnknownTool):
    """The key may use the tool, but only from `run_code`; saying so leaks nothing the meta-tools would not."""

    def __init__(self, name: str, server: str) -> None:
        super().__init__(
            name,
            hint=f" (this key uses the tools of MCP server {server!r} through Code Mode: find them with search_tools "
            "and call them from run_code)",
        )

    @property
    def reason(self) -> str:
        return "code_mode_only"


class UnknownPrompt(NotFound):
    code = "prompt_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown prompt: {name}", param="name")


class UnknownResource(NotFound):
    code = "resource_not_found"

    def __init__(self, uri: str) -> None:
        super().__init__(f"Unknown resource: {uri}", param="uri")
        self.uri = uri
        """As the client named it: JSON-RPC errors carry it as `data.uri` (SEP-2164)."""


class UnknownServer(NotFound):
    code = "server_not_found"

    def __init__(self, server: str) -> None:
        super().__init__(f"no MCP server named {server!r} is configured on this gateway")


class UnknownBundle(NotFound):
    code = "bundle_not_found"

    def __init__(self, bundle: str) -> None:
        super().__init__(f"no MCP bundle named {bundle!r} is configured on this gateway", param="bundle")


class UpstreamError(GatewayError):
    status = 502
    jsonrpc_code = -32603
    code = "upstream_error"

    def __init__(self, server: str, message: str) -> None:
        super().__init__(f"MCP server {server!r}: {message}")
        self.server = server


class UpstreamRejected(UpstreamError):
    code = "upstream_rejected"

    def __init__(self, server: str, upstream_code: int, upstream_message: str, upstream_data: Any = None) -> None:
        super().__init__(server, f"error {upstream_code}: {upstream_message}")
        self.upstream_code = upstream_code
        """Passed on as the JSON-RPC code (e.g. -32602 for a resource the server does not have)."""
        self.upstream_data = upstream_data
        """Passed on as the JSON-RPC `data` (e.g. `{"uri": ...}` for that resource, or -32021's capabilities)."""


class UpstreamUnavailable(UpstreamError):
    status = 503
    openai_type = "service_unavailable"
    jsonrpc_code = -32000
    retryable = True
    code = "upstream_unavailable"

    def __init__(self, server: str, state: str, last_error: str | None) -> None:
        reason = f" (last error: {last_error})" if last_error else ""
        super().__init__(server, f"is {state}{reason}; try again later")
        self.state = state


class UpstreamTimeout(UpstreamError):
    status = 504
    jsonrpc_code = -32001
    code = "upstream_timeout"

    def __init__(self, server: str, timeout: float) -> None:
        super().__init__(server, f"did not answer within its {timeout:g}s timeout")


class UpstreamAuthFailed(UpstreamError):
    code = "upstream_auth_failed"

    def __init__(self, server: str, message: str, *, error: str | None = None) -> None:
        super().__init__(server, f"OAuth: {message}")
        self.error = error
        """The authorization server's RFC 6749 error code (`invalid_grant`, `invalid_client`...), when it sent one."""


class AuthorizationRequired(UpstreamError):
    """A server with OAuth flow `authorization_code` and no token set for the calling key: the message says where
    the key's owner authorizes (once per window), or that the authorization is pending."""

    status = 401
    jsonrpc_code = -32000
    code = "upstream_authorization_required"

    def __init__(self, server: str, message: str, url: str | None) -> None:
        super().__init__(server, message)
        self.url = url
