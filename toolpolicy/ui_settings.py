"""Settings of the dashboard served at `/ui` (`isthmus.ui`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class UiSettings(BaseModel):
    """The web dashboard: signed in with the admin key; off when no admin key is configured."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, allow_inf_nan=False)

    enabled: bool = True
    """Serve the dashboard at `/ui` (it also needs `admin_key`)."""
    session_ttl: float = Field(default=8 * 3600, gt=0, le=30 * 86400)
    """Seconds a sign-in lasts; the cookie expires then and the admin key is asked for again."""
    page_size: int = Field(default=50, ge=1, le=500)
    """Rows per page of the key, log and audit lists."""
