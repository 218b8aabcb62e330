"""Errors of the LLM proxy, on top of the governance core's typed denials.

Provider adapters translate every aiohttp exception and every non-2xx answer into one of these, so nothing above an
adapter sees a foreign exception. Each error classifies itself for the router::

    GatewayError (toolpolicy.errors)
    ├── InvalidRequest                        400
    │   ├── PayloadTooLarge                   413
    │   └── UnsupportedByProvider             400  the target cannot serve this request; try the next target
    └── UpstreamError                         502  api_error
        ├── UpstreamUnavailable               502  connection refused/dropped, timeout        retry, then next target
        ├── UpstreamBadResponse               502  not JSON, wrong shape, over the size cap     next target
        ├── UpstreamStatusError          (provider's)  a non-2xx answer:
        │                                              429, 5xx, 408, 409    retry, then next target
        │                                              401, 403              key out of rotation, next key
        │                                              400, 413, 422         the request is wrong: answered as is
        │                                              other 4xx (404, ...)  next target
        └── NoTargetAvailable                 503  every target was skipped (no key, circuit open)
"""

from __future__ import annotations

from toolpolicy.errors import GatewayError, InvalidRequest, PayloadTooLarge as AnyPayloadTooLarge

_CLIENT_FAULTS = frozenset({400, 413, 422})
_RETRYABLE = frozenset({408, 409, 425, 429})


class PayloadTooLarge(AnyPayloadTooLarge):
    code = "request_too_large"


class UnsupportedByProvider(InvalidRequest):
    """This provider cannot serve the request (e.g. embeddings on Anthropic); the next target may."""

    code = "unsupported_by_provider"


class UpstreamError(GatewayError):
    """A provider failed to answer usefully."""

    status = 502
    openai_type = "api_error"
    code = "upstream_error"

    @property
    def retry_target(self) -> bool:
        """Worth trying the same target again after a backoff."""
        return False

    @property
    def key_rejected(self) -> bool:
        """The provider refused the API key: take the key out of rotation."""
        return False

    @property
    def final(self) -> bool:
        """The request itself is at fault: no other target would do better."""
        return False


class UpstreamUnavailable(UpstreamError):
    """No answer: connection refused or dropped, or a timeout."""

    code = "upstream_unavailable"

    @property
    def retry_target(self) -> bool:
        return True


class UpstreamBadResponse(UpstreamError):
    """An answer that is not what the provider's API promises (garbage, wrong shape, too large)."""

    code = "upstream_bad_response"


class UpstreamStatusError(UpstreamError):
    """A non-2xx answer; the caller sees the provider's status and message when no other target succeeds."""

    code = "upstream_status"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int,
        retry_after: float | None = None,
        provider_type: str | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.upstream_status = upstream_status
        self.provider_type = provider_type

    @property
    def http_status(self) -> int:
        """The status shown to the client: the provider's, except that a refused provider key is the gateway's fault."""
        return 502 if self.key_rejected else self.upstream_status

    @property
    def retry_target(self) -> bool:
        return self.upstream_status in _RETRYABLE or self.upstream_status >= 500

    @property
    def key_rejected(self) -> bool:
        return self.upstream_status in (401, 403)

    @property
    def final(self) -> bool:
        return self.upstream_status in _CLIENT_FAULTS


class NoTargetAvailable(UpstreamError):
    """Every target was skipped before an attempt: no usable key, or its circuit is open."""

    status = 503
    openai_type = "service_unavailable"
    code = "no_target_available"
