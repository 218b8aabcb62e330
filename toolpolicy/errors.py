"""Typed denials and errors of the governance core.

Every denial carries what each edge needs to render it, so no handler builds an error by hand::

    GatewayError                     status  OpenAI type             JSON-RPC
    ├── AuthenticationError           401     authentication_error    -32041
    │   ├── MissingKey
    │   ├── UnknownKey
    │   ├── RevokedKey
    │   └── ExpiredKey
    ├── PermissionDenied              403     permission_error        -32043
    │   ├── ModelNotAllowed
    │   └── ToolNotAllowed
    ├── LimitExceeded                 429     rate_limit_error        -32029   (retryable, Retry-After)
    ├── InvalidRequest                400     invalid_request_error   -32602
    │   ├── NotFound                  404
    │   ├── PayloadTooLarge           413      a request body over its route's limit
    │   └── GuardrailBlocked          400                             -32040   a guardrail rule with `action: block`
    │                                                                            matched (names the rule)
    ├── Conflict                      409     invalid_request_error   -32602
    └── ServiceUnavailable            503     service_unavailable     -32053   (retryable)

The edges (OpenAI envelope, Anthropic envelope, JSON-RPC error, admin API) render by looking these attributes up.
JSON-RPC codes stay clear of the ones MCP SDKs give meaning to (-32000 connection closed, -32001 request timeout,
-32020..-32022, -32042). A guardrail block has its own code: -32602 would tell an MCP client its parameters (a
resource's URI) were wrong.
"""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    """Base of every error the gateway renders to a caller."""

    status: ClassVar[int] = 500
    openai_type: ClassVar[str] = "api_error"
    jsonrpc_code: ClassVar[int] = -32603
    retryable: ClassVar[bool] = False
    code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        """A short machine-readable reason, used in audit records and metrics."""
        return self.code or type(self).__name__


class AuthenticationError(GatewayError):
    status = 401
    openai_type = "authentication_error"
    jsonrpc_code = -32041
    code = "invalid_api_key"


class MissingKey(AuthenticationError):
    code = "missing_api_key"


class UnknownKey(AuthenticationError):
    code = "invalid_api_key"


class RevokedKey(AuthenticationError):
    code = "key_revoked"


class ExpiredKey(AuthenticationError):
    code = "key_expired"


class PermissionDenied(GatewayError):
    status = 403
    openai_type = "permission_error"
    jsonrpc_code = -32043
    code = "permission_denied"


class ModelNotAllowed(PermissionDenied):
    code = "model_not_allowed"


class ToolNotAllowed(PermissionDenied):
    code = "tool_not_allowed"


class LimitExceeded(GatewayError):
    status = 429
    openai_type = "rate_limit_error"
    jsonrpc_code = -32029
    retryable = True
    code = "limit_exceeded"


class InvalidRequest(GatewayError):
    status = 400
    openai_type = "invalid_request_error"
    jsonrpc_code = -32602
    code = "invalid_request"


class NotFound(InvalidRequest):
    status = 404
    code = "not_found"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"


class GuardrailBlocked(InvalidRequest):
    """A guardrail with `action: block` matched; the message names the rule, never the matched text."""

    jsonrpc_code = -32040
    code = "guardrail_blocked"

    def __init__(self, message: str, *, rule: str) -> None:
        super().__init__(message)
        self.rule = rule


class Conflict(GatewayError):
    status = 409
    openai_type = "invalid_request_error"
    jsonrpc_code = -32602
    code = "conflict"


class ServiceUnavailable(GatewayError):
    status = 503
    openai_type = "service_unavailable"
    jsonrpc_code = -32053
    retryable = True
    code = "service_unavailable"
