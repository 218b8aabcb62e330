"""A PostgreSQL store URL's `search_path` query parameter: the schema(s) the gateway's tables live in.

asyncpg takes the setting only as a connect argument (`server_settings`), which a URL cannot carry through
SQLAlchemy, so `Store.open` takes it off the URL and hands it over; the configuration checks it the same way first
(read here with the standard library, so that loading the configuration does not load SQLAlchemy).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

PARAMETER = "search_path"
_NAMES = re.compile(r"[a-z_][a-z0-9_$]{0,62}(?:,[a-z_][a-z0-9_$]{0,62})*")
"""Unquoted PostgreSQL identifiers (lower case, as unquoted names are folded), comma-separated."""


def search_path(url: str) -> str | None:
    """The schemas `url`'s `search_path` names (None when it names none); ValueError naming the problem for a
    repeated or malformed one, or one on a store that is not PostgreSQL."""
    parts = urlsplit(url)
    values = [value for name, value in parse_qsl(parts.query) if name == PARAMETER]
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"{PARAMETER} is given more than once")
    if not parts.scheme.startswith("postgresql"):
        raise ValueError(f"{PARAMETER} applies only to a postgresql+asyncpg:// store")
    value = values[0]
    if not _NAMES.fullmatch(value):
        raise ValueError(
            f"{PARAMETER} {value!r} must be comma-separated schema names: lower-case letters, digits, '_' and '$', "
            "not starting with a digit, at most 63 characters each"
        )
    return value
