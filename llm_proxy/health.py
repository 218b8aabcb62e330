"""Which providers and keys to skip for now: circuit breakers and key cool-downs, read from process memory.

A breaker opens after `breaker_failures` consecutive failures and skips its provider or key for `breaker_cooldown`
seconds; afterwards requests go through again as probes, and the first success closes it while a failure opens it
for another cool-down. A key the provider refused (401/403) cools down for `key_cooldown` seconds at once.

Every check reads this process's memory only. What other replicas should know (a breaker opened or closed, a key
cooling down until when) is handed to `listener` as a `HealthChange` when it happens, and what other replicas saw
comes back through `apply`: `llm_proxy.health_sync` carries both over Redis. Failure counts stay per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from toolpolicy.settings import LlmSettings

ChangeKind = Literal["open", "close", "cool"]


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A state change worth telling other replicas: a breaker opened or closed, a key began cooling down."""

    kind: ChangeKind
    name: str
    """`openai` for a provider, `openai#0` for a provider's first key."""
    seconds: float = 0.0
    """For `open` and `cool`: how long from now the name is skipped."""


class _Breaker:
    __slots__ = ("failures", "open_until")

    def __init__(self) -> None:
        self.failures = 0
        self.open_until = 0.0


class Health:
    """Breakers and cool-downs by name (`openai`, `openai#0` for a provider's first key)."""

    def __init__(self, settings: LlmSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.listener: Callable[[HealthChange], None] | None = None
        """Told of every change other replicas should know; must not block (it runs on the request's path)."""
        self._breakers: dict[str, _Breaker] = {}
        self._cooling: dict[str, float] = {}

    def available(self, name: str) -> bool:
        now = self.clock()
        until = self._cooling.get(name)
        if until is not None:
            if now < until:
                return False
            del self._cooling[name]
        breaker = self._breakers.get(name)
        return breaker is None or breaker.failures < self.settings.breaker_failures or now >= breaker.open_until

    def failed(self, *names: str) -> None:
        threshold = self.settings.breaker_failures
        for name in names:
            breaker = self._breakers.setdefault(name, _Breaker())
            now = self.clock()
            was_open = breaker.failures >= threshold and now < breaker.open_until
            breaker.failures += 1
            if breaker.failures >= threshold:
                breaker.open_until = now + self.settings.breaker_cooldown
                if not was_open:  # opened, or a probe failed: concurrent failures of an open breaker say nothing new
                    self._tell(HealthChange("open", name, self.settings.breaker_cooldown))

    def succeeded(self, *names: str) -> None:
        for name in names:
            breaker = self._breakers.pop(name, None)
            if breaker is not None and breaker.failures >= self.settings.breaker_failures:
                self._tell(HealthChange("close", name))

    def cool(self, name: str, seconds: float) -> None:
        self._cooling[name] = self.clock() + seconds
        self._tell(HealthChange("cool", name, seconds))

    def apply(self, change: HealthChange) -> None:
        """Take in a change another replica saw (never told to `listener` again)."""
        if change.kind == "close":
            self._breakers.pop(change.name, None)
            return
        until = self.clock() + change.seconds
        if change.kind == "cool":
            self._cooling[change.name] = max(until, self._cooling.get(change.name, until))
            return
        breaker = self._breakers.setdefault(change.name, _Breaker())
        breaker.failures = max(breaker.failures, self.settings.breaker_failures)
        breaker.open_until = max(breaker.open_until, until)

    def _tell(self, change: HealthChange) -> None:
        if self.listener is not None:
            self.listener(change)

    def summary(self) -> dict[str, str]:
        """Names currently skipped, with why (for readiness)."""
        now = self.clock()
        skipped = {name: "key cooling down" for name, until in self._cooling.items() if now < until}
        for name, breaker in self._breakers.items():
            if breaker.failures >= self.settings.breaker_failures and now < breaker.open_until:
                skipped[name] = "circuit open"
        return skipped
