"""OAuth access tokens for Vertex AI, from a credentials file or Application Default Credentials, via google-auth.

A service account's token comes from the JWT-bearer grant at its `token_uri` (google-auth signs the assertion and
posts it); other credential types (authorized user, workload identity federation, the metadata server) refresh
their own way. google-auth's transport is blocking, so a refresh runs in a worker thread; the token is cached and
refreshed `REFRESH_MARGIN` before it expires, by an injectable clock; concurrent callers share one refresh.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import google.auth
import google.auth.exceptions
import google.auth.transport
import google.auth.transport.requests
from google.auth.credentials import Credentials
from google.oauth2 import service_account

from llm_proxy.errors import UpstreamStatusError, UpstreamUnavailable

logger = logging.getLogger(__name__)

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
REFRESH_MARGIN = timedelta(minutes=5)
"""A token this close to its expiry is refreshed before use: a request must not start with one about to lapse."""
TOKEN_TIMEOUT = 30.0
"""Seconds one call to the token endpoint may take."""


class CredentialsRefused(UpstreamStatusError):
    """No access token: the token endpoint refused the credentials, or there are none (a 401 of the provider's)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, upstream_status=401)


def load_file(path: str) -> tuple[Credentials, str | None]:
    """The credentials in a file and the project it names; a clear ValueError when it cannot be used.

    A service account is loaded as one; other types (authorized user, workload identity federation) through
    google-auth's generic loader, whose warning about credentials from untrusted sources does not apply to the
    operator's own config.
    """
    try:
        with open(path, encoding="utf-8") as file:
            info = json.load(file)
    except (OSError, ValueError) as exc:
        raise ValueError(f"credentials_file {path!r} cannot be read as JSON: {exc}") from None
    try:
        if isinstance(info, dict) and info.get("type") == "service_account":
            account = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=list(SCOPES)
            )
            return account, info.get("project_id")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            credentials, project = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
                path, scopes=list(SCOPES)
            )
    except (google.auth.exceptions.GoogleAuthError, ValueError) as exc:
        raise ValueError(f"credentials_file {path!r} cannot be used: {exc}") from None
    return credentials, project


class _Transport(google.auth.transport.Request):
    """google-auth's requests transport, one keep-alive session, with a bounded timeout (its default is 120 s)."""

    def __init__(self) -> None:
        self.inner = google.auth.transport.requests.Request()

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google.auth.transport.Response:
        timeout = min(timeout or TOKEN_TIMEOUT, TOKEN_TIMEOUT)
        response: google.auth.transport.Response = self.inner(url, method, body, headers, timeout=timeout, **kwargs)
        return response


class TokenSource:
    """Access tokens of one Vertex provider: `await token()` answers from the cache or refreshes once."""

    def __init__(
        self,
        provider: str,
        credentials: Credentials | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.provider = provider
        self.credentials = credentials
        """None until Application Default Credentials are looked up, on the first refresh."""
        self.project: str | None = None
        """The project Application Default Credentials named, once looked up."""
        self.clock = clock
        self.refreshes = 0
        """Tokens fetched so far (each one call to the token endpoint)."""
        self._token: str | None = None
        self._expiry: datetime | None = None
        self._lock = anyio.Lock()
        self._transport = _Transport()

    @property
    def expiry(self) -> datetime | None:
        """When the cached token expires (None: no token yet, or one without an expiry)."""
        return self._expiry if self._token is not None else None

    def fresh(self) -> bool:
        """Whether the cached token may still be used (it expires later than `REFRESH_MARGIN` from now)."""
        if self._token is None:
            return False
        return self._expiry is None or self.clock() < self._expiry - REFRESH_MARGIN

    async def token(self) -> str:
        if self.fresh():
            assert self._token is not None
            return self._token
        async with self._lock:
            # Whoever waited for the lock finds the token the first caller fetched.
            if not self.fresh():
                await anyio.to_thread.run_sync(self._refresh)
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token (Vertex refused it), so the next request fetches a new one."""
        self._token = None

    def _refresh(self) -> None:
        """Fetch a token (in a worker thread); google-auth errors become the proxy's own, naming the provider."""
        request = self._transport
        try:
            if self.credentials is None:
                self.credentials, self.project = google.auth.default(scopes=list(SCOPES), request=request)
            self.credentials.refresh(request)  # type: ignore[no-untyped-call]  # untyped in google-auth
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise CredentialsRefused(
                f"provider {self.provider!r} has no credentials_file and found no Application Default Credentials: "
                f"{exc}"
            ) from None
        except google.auth.exceptions.TransportError as exc:
            raise UpstreamUnavailable(f"provider {self.provider!r} could not reach its token endpoint: {exc}") from None
        except google.auth.exceptions.RefreshError as exc:
            if exc.retryable:
                raise UpstreamUnavailable(f"provider {self.provider!r} token endpoint failed: {exc}") from None
            raise CredentialsRefused(f"provider {self.provider!r} was refused an access token: {exc}") from None
        token = self.credentials.token
        if not isinstance(token, str) or not token:
            raise CredentialsRefused(f"provider {self.provider!r} got no access token")
        expiry = self.credentials.expiry
        self._token = token
        # google-auth keeps expiry as a naive UTC datetime.
        self._expiry = expiry.replace(tzinfo=UTC) if expiry is not None else None
        self.refreshes += 1
        logger.debug("provider %r: access token refreshed, expires %s", self.provider, self._expiry)
