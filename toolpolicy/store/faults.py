"""Telling a record the store rejected from a store that could not write.

The writers quarantine the first and retry the second, so the test leans to "unavailable": an error not known to be
about the data is retried (with backoff), never quarantined on a guess.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

# SQLSTATE classes about the values themselves: 22 data exception (bad encoding, too long, out of range),
# 23 integrity constraint violation (NOT NULL, CHECK...).
_RECORD_SQLSTATE_CLASSES = ("22", "23")


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error, looked for along the wrapped errors (driver adapters wrap the driver's)."""
    seen: list[BaseException] = [error]
    while seen and len(seen) < 8:
        candidate = seen[-1]
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str) and code:
            return code
        nested = getattr(candidate, "orig", None) or candidate.__cause__
        if not isinstance(nested, BaseException) or nested in seen:
            return None
        seen.append(nested)
    return None


def is_record_fault(error: BaseException) -> bool:
    """True when the store refused the records' content: retrying the same records cannot succeed."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError):
            return False
        if isinstance(error, sa_exc.DataError | sa_exc.IntegrityError):
            return True
        code = _sqlstate(error)
        return code is not None and code[:2] in _RECORD_SQLSTATE_CLASSES
    if isinstance(error, sa_exc.StatementError):
        # Raised while binding the values (not JSON-serialisable, a naive datetime...): before any I/O.
        return isinstance(error.orig, TypeError | ValueError)
    # SQLite encodes strings itself and raises UnicodeEncodeError on a lone surrogate.
    return isinstance(error, UnicodeError)
