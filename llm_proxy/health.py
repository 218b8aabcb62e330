"""Which providers and keys to skip for now: circuit breakers and key cool-downs, in process memory.

A breaker opens after `breaker_failures` consecutive failures and skips its provider or key for `breaker_cooldown`
seconds; afterwards requests go through again as probes, and the first success closes it while a failure opens it
for another cool-down. A key the provider refused (401/403) cools down for `key_cooldown` seconds at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from toolpolicy.settings import LlmSettings


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
        for name in names:
            breaker = self._breakers.setdefault(name, _Breaker())
            breaker.failures += 1
            if breaker.failures >= self.settings.breaker_failures:
                breaker.open_until = self.clock() + self.settings.breaker_cooldown

    def succeeded(self, *names: str) -> None:
        for name in names:
            self._breakers.pop(name, None)

    def cool(self, name: str, seconds: float) -> None:
        self._cooling[name] = self.clock() + seconds

    def summary(self) -> dict[str, str]:
        """Names currently skipped, with why (for readiness)."""
        now = self.clock()
        skipped = {name: "key cooling down" for name, until in self._cooling.items() if now < until}
        for name, breaker in self._breakers.items():
            if breaker.failures >= self.settings.breaker_failures and now < breaker.open_until:
                skipped[name] = "circuit open"
        return skipped
