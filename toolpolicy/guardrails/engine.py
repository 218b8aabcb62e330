"""The guardrails engine: which rules apply to a call, and one `Scan` per (request, surface) that enforces them.

    guardrails = Guardrails(settings.guardrails, servers={name: s.guardrails ...}, emit=governance.audit.emit)
    scan = guardrails.scan(principal, "input", request_id=..., target="openai/gpt-4o")   # None: no rule applies
    if scan is not None:
        body = scan.json(body)         # or scan.text(s); scan.stream() for a streamed text
        scan.report()                  # one audit record per rule that hit (also done on block)

Rules apply in config order. A rule applies to a call when it lists the surface in `apply_to` and it is `default:
true`, or the key, its team or its customer lists it under `guardrails`, or the MCP server called lists it; a rule
the key, team or customer lists under `skip_guardrails` does not apply, unless the server lists it (a server's rules
are its operator's and always apply). Resolved rule sets are cached by (the principal's lists, surface, server), so
a request pays a dictionary lookup, and nothing at all when no rules are configured.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from toolpolicy.audit import AuditRecord
from toolpolicy.errors import GuardrailBlocked
from toolpolicy.guardrails.detectors import detector_for
from toolpolicy.guardrails.rules import Hit, Rule, RuleSet, WebhookRule, blocking, rewrite
from toolpolicy.guardrails.settings import GuardrailSettings, Surface
from toolpolicy.guardrails.stream import STEP, StreamScanner
from toolpolicy.guardrails.walk import SKIP_KEYS, rewrite_texts
from toolpolicy.guardrails.webhook import WebhookPost, verdict
from toolpolicy.types import Principal

Emit = Callable[[AuditRecord], None]
_EMPTY = RuleSet(())


class Guardrails:
    """The configured rules, resolved per call; `emit` receives the `guardrail` audit records."""

    def __init__(
        self,
        rules: Sequence[GuardrailSettings],
        *,
        servers: Mapping[str, Sequence[str]] | None = None,
        emit: Emit | None = None,
        post: WebhookPost | None = None,
    ) -> None:
        self._settings = {rule.name: rule for rule in rules}
        self._rules: dict[str, Rule | WebhookRule] = {}
        for rule in rules:
            detector = detector_for(rule)
            if detector is not None:
                self._rules[rule.name] = Rule(rule.name, rule.action, detector)
            elif rule.webhook is not None:
                self._rules[rule.name] = WebhookRule(rule.name, rule.action, rule.webhook)
        self.post = post
        """How `webhook` rules reach their service (set at start by the app; None: they fail open or closed)."""
        self._servers = {server: frozenset(names) for server, names in (servers or {}).items() if names}
        self._defaults = frozenset(rule.name for rule in rules if rule.default)
        self._emit = emit
        self._cache: dict[tuple[Any, ...], RuleSet] = {}
        self._sets: dict[tuple[str, ...], RuleSet] = {}
        """Rule names in config order -> their RuleSet: at most one per combination the config allows."""

    @property
    def active(self) -> bool:
        """Whether any rule is configured (when not, callers skip the engine altogether)."""
        return bool(self._rules)

    @property
    def has_webhooks(self) -> bool:
        return any(isinstance(rule, WebhookRule) for rule in self._rules.values())

    def rules_for(self, principal: Principal | None, surface: Surface, server: str | None = None) -> RuleSet:
        if not self._rules:
            return _EMPTY
        listed = principal.guardrails if principal is not None else ()
        skipped = principal.skip_guardrails if principal is not None else ()
        key = (listed, skipped, surface, server)
        found = self._cache.get(key)
        if found is None:
            chosen = (self._defaults | frozenset(listed)) - frozenset(skipped)
            chosen |= self._servers.get(server or "", frozenset())
            applied = tuple(name for name in self._rules if name in chosen and surface in self._settings[name].apply_to)
            # One RuleSet (and its compiled prefilter, a few milliseconds to build) per distinct list of rules,
            # shared by every key, surface and server that resolves to it.
            found = self._sets.get(applied)
            if found is None:
                rules = [self._rules[name] for name in applied]
                found = self._sets[applied] = RuleSet(
                    tuple(rule for rule in rules if isinstance(rule, Rule)),
                    tuple(rule for rule in rules if isinstance(rule, WebhookRule)),
                )
            if len(self._cache) > 10_000:  # bounded: the key is a config-sized set of lists, but be safe
                self._cache.clear()
                self._sets = {applied: found}
            self._cache[key] = found
        return found

    def scan(
        self,
        principal: Principal | None,
        surface: Surface,
        *,
        request_id: str,
        target: str,
        server: str | None = None,
    ) -> Scan | None:
        """A scan for one request's text on one surface, or None when no rule applies to it."""
        rules = self.rules_for(principal, surface, server)
        if not rules:
            return None
        scan = Scan(rules, surface, request_id=request_id, target=target, principal=principal, emit=self._emit)
        scan.post = self.post
        return scan


class Scan:
    """Enforces one RuleSet on one request's surface and tallies the hits for its audit records."""

    __slots__ = ("_emit", "_tally", "changed", "post", "principal", "request_id", "rules", "surface", "target")

    def __init__(
        self,
        rules: RuleSet,
        surface: Surface,
        *,
        request_id: str,
        target: str,
        principal: Principal | None,
        emit: Emit | None,
    ) -> None:
        self.rules = rules
        self.surface = surface
        self.request_id = request_id
        self.target = target
        self.principal = principal
        self._emit = emit
        self._tally: dict[str, Counter[str]] = {}
        self.post: WebhookPost | None = None
        self.changed = False
        """Whether a redaction rewrote any text so far: when none did, a caller can send the bytes it received."""

    def text(self, value: str) -> str:
        """`value`, redacted; raises `GuardrailBlocked` if a blocking rule matched."""
        if not value:
            return value
        hits = self.rules.find(value)
        if not hits:
            return value
        self.record(hits)
        return self._rewritten(value, hits)

    def quiet(self, value: str) -> str:
        """`value` redacted (or refused) like `text`, without counting: for a stream's snapshots (a finished item,
        the final response object) of text whose pieces were already scanned and counted as they streamed."""
        if not value:
            return value
        hits = self.rules.find(value)
        blocked = blocking(hits)
        if blocked is not None:
            raise GuardrailBlocked(
                f"guardrail {blocked.rule.name!r} blocked the {_NOUNS[self.surface]}", rule=blocked.rule.name
            )
        return self._rewritten(value, hits) if hits else value

    def _rewritten(self, value: str, hits: list[Hit]) -> str:
        rewritten = rewrite(value, hits)
        if rewritten != value:
            self.changed = True
        return rewritten

    def json(self, value: Any, *, quiet: bool = False) -> Any:
        """Every text in an LLM body (see `walk`), redacted in place; raises `GuardrailBlocked` on a blocking hit."""
        return rewrite_texts(value, self.quiet if quiet else self.text)

    def values(self, value: Any) -> Any:
        """Every string anywhere in `value` (a tool's arguments, a structured result), redacted in place."""
        return rewrite_texts(value, self.text, inside=True, skip=frozenset())

    async def remote(self, value: Any, *, everything: bool = False) -> None:
        """Ask each `webhook` rule's service about the texts in `value` (an LLM body; with `everything`, every string
        in it), joined into one text; a verdict that found something is a hit, and a block raises. Run after the
        in-process rules, so a service never sees what they redacted or blocked."""
        if not self.rules.webhooks:
            return
        texts: list[str] = []

        def collect(text: str) -> str:
            texts.append(text)
            return text

        rewrite_texts(value, collect, inside=everything, skip=frozenset() if everything else SKIP_KEYS)
        await self.judge("\n".join(texts))

    async def judge(self, text: str, *, blocking: bool | None = None) -> None:
        """Ask each `webhook` rule's service about `text` (`blocking`: only the blocking rules' with True, only the
        others' with False); a verdict that found something is a hit, and a block raises `GuardrailBlocked`."""
        if not text:
            return
        for rule in self.rules.webhooks:
            if blocking is not None and (rule.action == "block") != blocking:
                continue
            found = await verdict(rule.settings, self.post, text)
            if not found:
                continue
            counts = self._tally.setdefault(rule.name, Counter())
            counts.update(found)
            if rule.action == "block":
                self.report()
                raise GuardrailBlocked(f"guardrail {rule.name!r} blocked the {_NOUNS[self.surface]}", rule=rule.name)

    def stream(self, *, step: int = STEP) -> StreamScanner:
        """A scanner for one streamed text (one per choice, content block or output item); it scans every `step`
        characters."""
        return StreamScanner(self, step=step)

    def record(self, hits: list[Hit]) -> None:
        """Count hits; on a blocking one, audit what was found and raise."""
        for hit in hits:
            self._tally.setdefault(hit.rule.name, Counter())[hit.label] += 1
        blocked = blocking(hits)
        if blocked is not None:
            self.report()
            raise GuardrailBlocked(
                f"guardrail {blocked.rule.name!r} blocked the {_NOUNS[self.surface]}", rule=blocked.rule.name
            )

    @property
    def hits(self) -> dict[str, dict[str, int]]:
        """Hits so far (not yet reported): rule -> entity -> count."""
        return {rule: dict(counts) for rule, counts in self._tally.items()}

    def report(self) -> None:
        """One `guardrail` audit record per rule that hit since the last report: its action, the surface, the
        entity types and their counts. Never the matched text."""
        tally, self._tally = self._tally, {}
        if self._emit is None:
            return
        principal = self.principal
        applied: list[Rule | WebhookRule] = [*self.rules.rules, *self.rules.webhooks]
        for rule in applied:
            counts = tally.get(rule.name)
            if not counts:
                continue
            self._emit(
                AuditRecord(
                    request_id=self.request_id,
                    kind="guardrail",
                    target=self.target,
                    decision=rule.action,
                    status=GuardrailBlocked.status if rule.action == "block" else 200,
                    latency_ms=0.0,
                    key_id=principal.key_id if principal else None,
                    key_name=principal.key_name if principal else None,
                    team=principal.team if principal else None,
                    customer=principal.customer if principal else None,
                    reason=rule.name,
                    details={
                        "rule": rule.name,
                        "action": rule.action,
                        "surface": self.surface,
                        "entities": dict(sorted(counts.items())),
                        "hits": sum(counts.values()),
                    },
                )
            )


_NOUNS: dict[Surface, str] = {
    "input": "request",
    "output": "response",
    "tool_input": "tool call's arguments",
    "tool_output": "tool's result",
}
