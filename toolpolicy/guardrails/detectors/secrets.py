"""Secrets: cloud keys, service tokens, private keys, JWTs and high-entropy values assigned to secret-looking names.

A curated table rather than a dependency: detect-secrets' plugins are Python `re` patterns run line by line (some
with backtracking), while every pattern here is RE2 (linear time) with bounded repeats, so a stream knows the longest
match it must hold back. Sources for the shapes: gitleaks' default rules (config/gitleaks.toml), detect-secrets'
plugins (aws, github, gitlab, slack, stripe, jwt, private_key, high-entropy strings), and the vendors' own formats:
AWS access key ids (IAM docs, "unique identifier prefixes"), GitHub token prefixes (github.blog 2021-04-05 "Behind
GitHub's new authentication token formats"), GitLab `glpat-` (GitLab personal access token docs), Slack `xox?-`
(Slack token types docs), Stripe `sk_/rk_` (Stripe API keys docs), OpenAI's `T3BlbkFJ` marker (base64 of "OpenAI"),
Anthropic `sk-ant-`, Google `AIza` (Google Cloud API keys docs), PEM private key armour (RFC 7468).
"""

from __future__ import annotations

import math
from collections import Counter

from toolpolicy.guardrails.detectors.base import PatternDetector, max_width


def _high_entropy(value: str) -> bool:
    """Random-looking: letters and digits both present, and at least 3.5 bits of Shannon entropy per character."""
    if not any(c.isdigit() for c in value) or not any(c.isalpha() for c in value):
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= 3.5


_PEM_BODY = r"[A-Za-z0-9+/=\s:,]{0,1000}"
_NAMES = r"api[_-]?key|apikey|secret|token|passw(?:or)?d|access[_-]?key|client[_-]?secret|auth"
SECRET_PATTERNS: list[tuple[str, str, object]] = [
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b", None),
    ("github_token", r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,251}\b", None),
    ("github_token", r"\bgithub_pat_[A-Za-z0-9_]{82}\b", None),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_-]{20,50}\b", None),
    ("slack_token", r"\bxox[abposer]-[A-Za-z0-9-]{10,250}", None),
    ("slack_webhook", r"hooks\.slack\.com/services/T[A-Z0-9]{1,20}/B[A-Z0-9]{1,20}/[A-Za-z0-9]{1,40}", None),
    ("stripe_key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,247}\b", None),
    # Before OpenAI's: `sk-ant-...` would fit a looser `sk-` shape too, and the first of equal matches names it.
    ("anthropic_api_key", r"\bsk-ant-[A-Za-z0-9_-]{32,200}", None),
    ("openai_api_key", r"\bsk-(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{16,100}T3BlbkFJ[A-Za-z0-9_-]{16,100}", None),
    ("openai_api_key", r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,200}", None),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}\b", None),
    (
        "private_key",
        # RE2 caps one repeat at 1,000: four of them cover a 4,096-bit RSA key's PEM body.
        r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
        + _PEM_BODY * 4
        + r"(?:-----END[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----)?",
        None,
    ),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,500}.eyJ[A-Za-z0-9_-]{8,1000}\.[A-Za-z0-9_-]{8,700}", None),
    (
        "secret_assignment",
        rf"(?i)(?:{_NAMES})[A-Za-z0-9_-]{{0,20}}[\"']?\s{{0,3}}[:=]\s{{0,3}}[\"']?([A-Za-z0-9/+_=.~-]{{16,128}})",
        _high_entropy,
    ),
]
# Every pattern above begins with one of these prefixes; a stream holds text back only from where one occurs, for at
# most the longest match of the patterns it starts: a PEM block or a JWT is long, everything else is short.
_LONG = {"private_key": "-----BEGIN", "jwt": "eyJ"}
_SHORT = rf"AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|glpat-|xox|hooks\.slack|sk_|rk_|sk-|AIza|(?i:{_NAMES})"


def _width(labels: set[str], exclude: bool = False) -> int:
    return max(max_width(pattern, cap=8192) for label, pattern, _ in SECRET_PATTERNS if (label in labels) != exclude)


# Each pattern's gate, in table order: a literal every match of it contains (see `PatternDetector`).
SECRET_GATES: list[str | None] = [
    r"AKIA|ASIA|ABIA|ACCA",
    r"gh[pousr]_",
    r"github_pat_",
    r"glpat-",
    r"xox[abposer]-",
    r"hooks\.slack\.com/services/T",
    r"[sr]k_(?:live|test)_",
    r"sk-ant-",
    r"sk-",
    r"sk-(?:proj|svcacct|admin)-",
    r"AIza",
    r"-----BEGIN",
    r"eyJ",
    rf"(?i:{_NAMES})",
]


def secrets_detector() -> PatternDetector:
    starters = [(prefix, _width({label})) for label, prefix in _LONG.items()]
    starters.append((_SHORT, _width(set(_LONG), exclude=True)))
    return PatternDetector(
        SECRET_PATTERNS,
        window=_width(set(), exclude=True),
        starters=tuple(starters),
        starter_length=len("client_secret"),
        gates=SECRET_GATES,
    )
