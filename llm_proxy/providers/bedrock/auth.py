"""AWS credentials and SigV4 signing for Bedrock, both by botocore.

Credentials are the provider's explicit `aws_access_key_id` / `aws_secret_access_key` (and `aws_session_token`), or
else botocore's standard chain: environment, shared config and credentials files (`AWS_PROFILE`), web identity
(EKS, `AWS_WEB_IDENTITY_TOKEN_FILE`), ECS container and EC2 instance roles. The chain is run once, in a worker thread
(it may call the instance metadata service), on the first request that needs it; credentials it gives that expire
(roles, web identity) are refreshed by botocore before they do, again off the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials, RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from llm_proxy.errors import UpstreamStatusError
from toolpolicy.settings import ProviderSettings

logger = logging.getLogger(__name__)

_FAILURES = (BotoCoreError, ClientError, RuntimeError, OSError)
"""What loading or refreshing credentials raises: botocore's errors, STS's answers, and expired refreshes."""
SERVICE = "bedrock"
"""The SigV4 signing name of the Bedrock runtime API."""


class NoCredentials(UpstreamStatusError):
    """No AWS credentials could be found or refreshed: the provider cannot sign, as if AWS had refused it (401)."""

    code = "upstream_credentials"

    def __init__(self, message: str) -> None:
        super().__init__(message, upstream_status=401, provider_type="NoCredentials")


class AwsSigner:
    """Signs Bedrock requests with SigV4 for `service bedrock` in the provider's region."""

    def __init__(self, provider: str, settings: ProviderSettings, region: str) -> None:
        self.provider = provider
        self.region = region
        self._credentials: Credentials | None = _explicit(settings)
        self._lock = anyio.Lock()

    async def credentials(self) -> ReadOnlyCredentials:
        """The current credentials, refreshed by botocore when they are about to expire."""
        if self._credentials is None:
            async with self._lock:
                if self._credentials is None:
                    self._credentials = await anyio.to_thread.run_sync(self._chain)
        credentials = self._credentials
        if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
            # A refresh calls STS or the metadata service: not on the event loop.
            return await anyio.to_thread.run_sync(self._frozen, credentials)
        return self._frozen(credentials)

    def _chain(self) -> Credentials:
        try:
            found = botocore.session.Session().get_credentials()
        except _FAILURES as exc:
            raise NoCredentials(f"provider {self.provider!r} could not load AWS credentials: {exc}") from exc
        if found is None:
            raise NoCredentials(
                f"provider {self.provider!r} found no AWS credentials: set aws_access_key_id and "
                "aws_secret_access_key, Bedrock API keys (keys), or credentials the standard AWS chain finds "
                "(AWS_* environment variables, ~/.aws profile, web identity, instance role)"
            )
        logger.info("provider %s signs with AWS credentials from %s", self.provider, found.method)
        return found

    def _frozen(self, credentials: Credentials) -> ReadOnlyCredentials:
        try:
            return credentials.get_frozen_credentials()
        except _FAILURES as exc:
            raise NoCredentials(f"provider {self.provider!r} could not refresh its AWS credentials: {exc}") from exc

    async def sign(self, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """`headers` plus `X-Amz-Date`, `X-Amz-Security-Token` (temporary credentials) and `Authorization` for a
        POST of `body` to `url` (its path percent-encoded once, as sent: botocore encodes it again to sign)."""
        request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
        SigV4Auth(await self.credentials(), SERVICE, self.region).add_auth(request)
        return dict(request.headers.items())


def _explicit(settings: ProviderSettings) -> Credentials | None:
    access_key = settings.aws_access_key_id
    secret = settings.aws_secret_access_key
    if not access_key or secret is None or not secret.get_secret_value():
        return None
    token = settings.aws_session_token.get_secret_value() if settings.aws_session_token is not None else ""
    return Credentials(access_key, secret.get_secret_value(), token or None, method="explicit")
