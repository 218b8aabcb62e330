"""The `telemetry:` settings (tracing), apart from `settings.py` to keep that module small."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)


class TelemetrySettings(_Model):
    """Traces, and the event loop's lag probe; metrics are always served at `/metrics`."""

    otlp_endpoint: str | None = None
    """OTLP/HTTP endpoint of a collector (e.g. http://127.0.0.1:4318); the standard `OTEL_EXPORTER_OTLP_ENDPOINT`
    environment variable is used when this is null. No endpoint: tracing is off and costs nothing."""
    otlp_headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Headers sent to the collector (e.g. an API key)."""
    service_name: str = "isthmus"
    """`service.name` of the spans."""
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of new traces recorded (a caller's sampled trace is always continued)."""
    record_content: bool = False
    """Put prompts, completions and tool arguments on spans."""
    loop_lag_interval: float = Field(default=0.1, ge=0, le=60)
    """Seconds between two probes of the event loop's lag (`isthmus_event_loop_lag_seconds`), each one wake-up of
    the loop; 0 turns the probe off."""
