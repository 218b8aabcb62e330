"""The text of aware UTC datetimes as the store writes them, from the text of their minute remembered.

The C `isoformat` formats every field with `printf` (about 12k instructions a call), and a batch's rows fall in a
minute or two: so the text of the minute is made once, and only the seconds and microseconds are added per value.
"""

from __future__ import annotations

from datetime import datetime

_Minute = tuple[int, int, int, int, int]


class UTCText:
    """An aware UTC datetime's ISO text with microseconds (`isoformat(timespec="microseconds")`), and SQLite's
    DATETIME text of it (`YYYY-MM-DD HH:MM:SS.ffffff`, no offset), exact for a plain `datetime` whose `tzinfo` is
    `UTC` (a subclass may format itself otherwise: its callers send it through its own `isoformat`)."""

    _SECONDS = tuple(f"{second:02d}." for second in range(60))
    _REMEMBERED = 64
    """Minutes remembered at most (forgotten all at once past this: rows come in time order)."""

    def __init__(self) -> None:
        self._minutes: dict[_Minute, tuple[str, str]] = {}

    def of(self, utc: datetime) -> tuple[str, str]:
        """`(ISO text as JSON, DATETIME text)` of `utc` (seconds 0-59: a datetime has no leap second). The ISO text
        needs no escaping: it is quoted as it is."""
        prefixes = self._minutes.get((utc.year, utc.month, utc.day, utc.hour, utc.minute)) or self._remember(utc)
        # `str(1_000_000 + microsecond)[1:]` is its six digits, zero-padded.
        rest = self._SECONDS[utc.second] + str(1_000_000 + utc.microsecond)[1:]
        return prefixes[0] + rest + '+00:00"', prefixes[1] + rest

    def sqlite(self, utc: datetime) -> str:
        """SQLite's DATETIME text of `utc` alone: `utc.isoformat(" ", "microseconds")[:26]`."""
        prefixes = self._minutes.get((utc.year, utc.month, utc.day, utc.hour, utc.minute)) or self._remember(utc)
        return prefixes[1] + self._SECONDS[utc.second] + str(1_000_000 + utc.microsecond)[1:]

    def _remember(self, utc: datetime) -> tuple[str, str]:
        """The texts of `utc`'s minute, `('"' + ISO, DATETIME)`, each up to its seconds."""
        if len(self._minutes) >= self._REMEMBERED:
            self._minutes.clear()
        iso = utc.isoformat(timespec="microseconds")
        prefixes = self._minutes[(utc.year, utc.month, utc.day, utc.hour, utc.minute)] = (
            '"' + iso[:17],
            iso[:10] + " " + iso[11:17],
        )
        return prefixes
