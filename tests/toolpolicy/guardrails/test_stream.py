"""The stream scanner: a value split across chunks at any offset is found as if it came whole."""

from __future__ import annotations

import pytest

from toolpolicy.errors import GuardrailBlocked
from toolpolicy.guardrails import Guardrails, GuardrailSettings, Scan

from .test_detectors import GITHUB, PEM

RULES = [
    GuardrailSettings(name="no-secrets", detect="secrets", action="redact", default=True),
    GuardrailSettings(name="pii", detect="pii", action="redact", default=True),
    GuardrailSettings(name="codename", detect="regex", patterns=[r"(?i)project\s+falcon"], action="block"),
]
TEXT = (
    "Sure. The key is AKIAIOSFODNN7EXAMPLE, mail jane@example.com or call 415-555-0132; "
    f"the token {GITHUB} and card 4111 1111 1111 1111 end here."
)
EXPECTED = (
    "Sure. The key is [REDACTED:aws_access_key], mail [REDACTED:email] or call [REDACTED:phone]; "
    "the token [REDACTED:github_token] and card [REDACTED:credit_card] end here."
)


def _scan(*, listed: tuple[str, ...] = ()) -> Scan:
    from toolpolicy.types import Principal

    scan = Guardrails(RULES).scan(Principal("k", "k", guardrails=listed), "output", request_id="r", target="m")
    assert scan is not None
    return scan


def _streamed(scan: Scan, chunks: list[str], step: int = 1) -> str:
    # Step 1 scans on every chunk, so each split is decided mid-stream, not only at the end.
    scanner = scan.stream(step=step)
    return "".join(scanner.feed(chunk) for chunk in chunks) + scanner.flush()


def test_the_whole_text_redacts_every_value() -> None:
    assert _scan().text(TEXT) == EXPECTED


@pytest.mark.parametrize("offset", range(1, len(TEXT)))
def test_one_split_at_every_offset_gives_the_same_text(offset: int) -> None:
    scan = _scan()
    assert _streamed(scan, [TEXT[:offset], TEXT[offset:]]) == EXPECTED
    assert scan.hits == {
        "no-secrets": {"aws_access_key": 1, "github_token": 1},
        "pii": {"email": 1, "phone": 1, "credit_card": 1},
    }


@pytest.mark.parametrize("step", [1, 64])
@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13])
def test_small_chunks_of_every_size_give_the_same_text(size: int, step: int) -> None:
    chunks = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    assert _streamed(_scan(), chunks, step) == EXPECTED


def test_a_private_key_split_into_characters_is_redacted_whole() -> None:
    text = f"here:\n{PEM}\nthat was it"
    assert _streamed(_scan(), list(text)) == "here:\n[REDACTED:private_key]\nthat was it"


def test_text_before_the_window_flows_before_the_stream_ends() -> None:
    scanner = _scan().stream()
    words = "plain words without anything to find. " * 40
    out = scanner.feed(words)
    assert out and words.startswith(out)
    assert scanner.held <= 384  # the longest PII match (an email) is all that waits


@pytest.mark.parametrize("offset", range(1, len("say Project  Falcon now")))
def test_a_blocked_value_split_anywhere_blocks(offset: int) -> None:
    text = "say Project  Falcon now"
    scanner = _scan(listed=("codename",)).stream(step=1)
    with pytest.raises(GuardrailBlocked) as caught:
        scanner.feed(text[:offset])
        scanner.feed(text[offset:])
        scanner.flush()
    assert caught.value.rule == "codename"
    assert "Falcon" not in caught.value.message


def test_nothing_of_a_blocked_value_goes_out_before_the_block() -> None:
    scanner = _scan(listed=("codename",)).stream(step=1)
    sent = ""
    with pytest.raises(GuardrailBlocked):
        for char in "intro text. project falcon is secret":
            sent += scanner.feed(char)
        scanner.flush()
    assert "falcon" not in sent.lower()


@pytest.mark.parametrize("offset", range(1, len("ref number 4111 1111 1111 1111 ok")))
def test_a_match_overlapping_another_rules_match_is_not_let_out_half_scanned(offset: int) -> None:
    rules = [
        GuardrailSettings(name="numbers", detect="regex", patterns=[r"number \d{4}"], action="log", default=True),
        GuardrailSettings(name="cards", detect="pii", entities=["credit_card"], action="redact", default=True),
    ]
    scan = Guardrails(rules).scan(None, "output", request_id="r", target="m")
    assert scan is not None
    text = "ref number 4111 1111 1111 1111 ok"
    assert _streamed(scan, [text[:offset], text[offset:]]) == "ref number [REDACTED:credit_card] ok"
