"""An upstream LLM provider's settings (the `providers:` entries): its kind, where and how it is reached."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


class ProviderKey(_Model):
    """One API key of an LLM provider."""

    value: SecretStr
    """The provider's API key. An empty value (e.g. an unset `${VAR:-}`) leaves this key out of rotation."""
    weight: float = Field(default=1.0, gt=0)
    """Relative share of traffic among the keys that allow the model."""
    models: list[str] | None = None
    """Model globs this key may serve; null means every model."""


PresetKind = Literal[
    "groq",
    "mistral",
    "together",
    "fireworks",
    "deepseek",
    "xai",
    "openrouter",
    "cerebras",
    "perplexity",
    "ollama",
    "vllm",
    "lmstudio",
]
"""OpenAI-compatible services known by name (`llm_proxy.providers.presets`): base URL, auth header and prices."""

OPENAI_BASE_URL = "https://api.openai.com/v1"
"""OpenAI's own API, the `openai` kind's default `base_url`."""


class ProviderSettings(_Model):
    """An upstream LLM provider."""

    kind: Literal["openai", "anthropic", "gemini", "azure", "bedrock", "vertex", "echo"] | PresetKind
    """Wire protocol: `openai` also covers every OpenAI-compatible server; `bedrock` is AWS Bedrock and `vertex` is
    Google Cloud's Vertex AI (Gemini and Claude models); a preset kind (`groq`, `ollama`, ...) is an OpenAI-compatible
    service whose base URL, auth header and prices are known; `echo` is the built-in test provider."""
    base_url: str | None = None
    """Base URL of the provider's API; each kind has a default. `anthropic` and `gemini` take it with or without the
    version (`https://api.anthropic.com` as in `ANTHROPIC_BASE_URL`, or `.../v1`); `openai` takes it as the OpenAI SDK
    does, version included (`https://api.openai.com` alone means `.../v1`)."""
    keys: list[ProviderKey] = Field(default_factory=list)
    """API keys, load-balanced by weight."""
    api_version: str | None = None
    """Azure OpenAI `api-version` query parameter (`2024-10-21` when unset), or `v1` for Azure's version-less
    `/openai/v1` API (the deployment goes in the body's `model`; its Responses API may be native)."""
    project: str | None = None
    """`vertex`: the Google Cloud project; unset, the `project_id` of `credentials_file`."""
    location: str | None = None
    """`vertex`: the region (`us-central1` when unset, `europe-west4`, ...) or `global`; it picks the default
    `base_url`."""
    credentials_file: str | None = None
    """`vertex`: a service-account JSON (its `token_uri` honoured) or any credentials file google-auth reads;
    unset, Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's, the metadata server)."""
    region: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    """AWS region of a `bedrock` provider, e.g. `us-east-1`: its SigV4 signing region and default `base_url`
    (`https://bedrock-runtime.<region>.amazonaws.com`)."""
    aws_access_key_id: str | None = None
    """A `bedrock` provider's AWS access key id. Empty, with the secret: the standard AWS credential chain
    (environment, shared config/profile, web identity, instance role) is used, unless `keys` are given."""
    aws_secret_access_key: SecretStr | None = None
    """The secret access key that goes with `aws_access_key_id`."""
    aws_session_token: SecretStr | None = None
    """The session token of temporary credentials (STS); empty means none."""
    models: list[str] = Field(default_factory=list)
    """Model names listed by `GET /v1/models` as `<provider>/<model>`; requests may name other models too. Empty:
    the provider's own listing is fetched in the background (`llm.models_refresh`), for kinds that have one."""
    responses: Literal["native", "chat"] | None = None
    """How `/v1/responses` reaches an `openai`-kind provider: `native` posts to its own `/responses`, `chat`
    translates to chat completions (for OpenAI-compatible servers without the Responses API: vLLM, Ollama...).
    Unset: `native` when `base_url` is unset or OpenAI's own, `chat` for any other `base_url`. Other kinds always
    translate, so only `chat` (or unset) is accepted for them."""

    @model_validator(mode="after")
    def _azure_needs_base_url(self) -> ProviderSettings:
        if self.kind == "azure" and not self.base_url:
            raise ValueError("an azure provider needs base_url, e.g. https://<resource>.openai.azure.com")
        _check_aws(self)
        _check_vertex(self)
        if self.responses == "native" and self.kind != "openai" and not self.azure_v1:
            raise ValueError(
                f"responses: native needs kind openai (or azure with api_version: v1); a {self.kind} provider is "
                "always translated"
            )
        return self

    @property
    def azure_v1(self) -> bool:
        """Whether this is an azure provider on Azure's version-less `/openai/v1` API."""
        return self.kind == "azure" and self.api_version == "v1"

    @property
    def native_responses(self) -> bool:
        """Whether `/v1/responses` goes to this provider's own Responses API (see `responses`)."""
        if self.azure_v1:
            return self.responses == "native"
        if self.kind != "openai":
            return False
        if self.responses is not None:
            return self.responses == "native"
        # OpenAI's own host, as pasted with or without its version (the adapter adds `/v1` to the bare host).
        return self.base_url is None or self.base_url.rstrip("/") in (OPENAI_BASE_URL, OPENAI_BASE_URL[: -len("/v1")])

    @property
    def usable_keys(self) -> list[ProviderKey]:
        """The keys with a non-empty value."""
        return [key for key in self.keys if key.value.get_secret_value()]


def _check_vertex(provider: ProviderSettings) -> None:
    """A `vertex` provider has a project (or a credentials file naming it) and no keys; other kinds have no Google
    Cloud fields."""
    if provider.kind != "vertex":
        named = [name for name in ("project", "location", "credentials_file") if getattr(provider, name) is not None]
        if named:
            raise ValueError(f"{', '.join(named)}: settings of kind vertex only")
        return
    if not (provider.project or provider.credentials_file):
        raise ValueError("a vertex provider needs project (or a credentials_file whose project_id says it)")
    if provider.keys:
        raise ValueError(
            "a vertex provider authenticates with credentials_file or Application Default Credentials, not keys"
        )
    if provider.location is not None and not re.fullmatch(r"[a-z0-9-]{1,63}", provider.location):
        raise ValueError(f"location {provider.location!r} is not a Google Cloud region name (e.g. us-central1)")


def _check_aws(provider: ProviderSettings) -> None:
    """A `bedrock` provider has a region and whole credentials; other kinds have no AWS fields."""
    aws = {
        "region": provider.region,
        "aws_access_key_id": provider.aws_access_key_id,
        "aws_secret_access_key": provider.aws_secret_access_key,
        "aws_session_token": provider.aws_session_token,
    }
    if provider.kind != "bedrock":
        named = [name for name, value in aws.items() if value is not None]
        if named:
            raise ValueError(f"{', '.join(named)} only apply to kind bedrock")
        return
    if provider.region is None:
        raise ValueError("a bedrock provider needs region, e.g. us-east-1")
    secret = provider.aws_secret_access_key
    if bool(provider.aws_access_key_id) != bool(secret is not None and secret.get_secret_value()):
        raise ValueError("give aws_access_key_id and aws_secret_access_key together (or neither, for the AWS chain)")
