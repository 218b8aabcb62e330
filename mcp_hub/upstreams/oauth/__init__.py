"""Upstream OAuth (`mcp_servers.<name>.auth: {type: oauth, ...}`): MCP servers that require OAuth, served by the hub.

The entry point is `hub.UpstreamOAuth` (imported from there, so that this package's import stays light: the call
path needs only `acting_as`):

- `credentials.py`: what every flow offers the transports; `ACTING`, the key a request is made for;
- `service.py`: flow `client_credentials`; `personal.py`: flow `authorization_code`, a token set per key;
- `discovery.py`, `endpoints.py`: the authorization server's metadata, token and registration endpoints;
- `transport.py`: the bearer on each request (httpx2); `routes.py`: `/oauth/upstream/...`.
"""

from mcp_hub.upstreams.oauth.credentials import ACTING, acting_as

__all__ = ["ACTING", "acting_as"]
