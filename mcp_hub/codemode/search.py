"""Okapi BM25 over the tools of one request: names, server, descriptions and parameter names.

Small enough to write out: a few hundred documents of a few dozen words each, indexed per request in well under
a millisecond per tool. Words are split at case changes and punctuation (`getIssue`, `get_issue` and `get-issue`
all give `get issue`), lower-cased and lightly stemmed (`issues` -> `issue`). Name words count three times, so a
tool named for the query outranks one that only mentions it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp_hub.codemode.toolbox import BoundTool

K1 = 1.2
B = 0.75
NAME_WEIGHT = 3

_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_STOP = frozenset(
    "a an and are as at be by for from has have in into is it its of on or that the this to was were will with".split()
)


def _stem(word: str) -> str:
    """Plurals to singular, which is most of what tool queries need (`issues` finds `issue`)."""
    if len(word) <= 3:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def terms(text: str) -> list[str]:
    """The searchable words of `text`."""
    words = (word.lower() for word in _WORDS.findall(text))
    return [_stem(word) for word in words if word not in _STOP]


def _document(tool: BoundTool) -> list[str]:
    spec = tool.spec
    name = terms(spec.name) + (terms(tool.function) if tool.function != spec.name else [])
    params = [word for param in tool.params for word in terms(param.wire)]
    return name * NAME_WEIGHT + terms(spec.server) + terms(spec.description or "") + params


class SearchIndex:
    """BM25 over a fixed list of tools."""

    def __init__(self, tools: Sequence[BoundTool]) -> None:
        self.tools = tools
        self._docs = [Counter(_document(tool)) for tool in tools]
        self._lengths = [sum(doc.values()) for doc in self._docs]
        self._average = sum(self._lengths) / len(self._lengths) if self._lengths else 0.0
        frequency: Counter[str] = Counter()
        for doc in self._docs:
            frequency.update(doc.keys())
        count = len(tools)
        self._idf = {term: math.log(1 + (count - n + 0.5) / (n + 0.5)) for term, n in frequency.items()}

    def search(self, query: str, limit: int) -> list[tuple[BoundTool, float]]:
        """The best `limit` tools for `query`, best first; ties in name order. Tools matching no word are left out."""
        wanted = set(terms(query))
        scored = []
        for tool, doc, length in zip(self.tools, self._docs, self._lengths, strict=True):
            score = 0.0
            for term in wanted:
                tf = doc.get(term, 0)
                if tf:
                    norm = K1 * (1 - B + B * length / self._average)
                    score += self._idf[term] * tf * (K1 + 1) / (tf + norm)
            if score > 0:
                scored.append((tool, score))
        scored.sort(key=lambda pair: (-pair[1], pair[0].qualified))
        return scored[:limit]
