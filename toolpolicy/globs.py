"""Glob sets: the allowlist primitive shared by model and tool policies."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class GlobSet:
    """Case-sensitive shell-style globs (`*`, `?`, `[...]`) compiled into one regular expression."""

    patterns: tuple[str, ...]
    _regex: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.patterns)) if self.patterns else None
        object.__setattr__(self, "_regex", regex)

    @classmethod
    def of(cls, patterns: Iterable[str]) -> GlobSet:
        return cls(tuple(patterns))

    def matches(self, name: str) -> bool:
        return self._regex is not None and self._regex.match(name) is not None

    def __bool__(self) -> bool:
        return bool(self.patterns)
