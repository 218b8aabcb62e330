"""PII: email addresses, payment card numbers (Luhn), phone numbers, IBANs (mod-97), US SSNs, IP addresses.

Each pattern is RE2 with bounded repeats; a validator drops look-alikes (a 16-digit order number that fails Luhn,
an IBAN-shaped string whose check digits are wrong, an SSN in a range never issued, `999.1.1.1`).
"""

from __future__ import annotations

import ipaddress

from toolpolicy.guardrails.detectors.base import PatternDetector


def luhn(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def iban_valid(value: str) -> bool:
    """ISO 13616 check digits: move the first four characters to the end, letters to numbers, mod 97 == 1."""
    compact = value.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def ssn_valid(value: str) -> bool:
    """A US SSN in an issuable range: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    area, group, serial = value.split("-")
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def phone_valid(value: str) -> bool:
    return 10 <= sum(c.isdigit() for c in value) <= 15


def ip_valid(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
PII_PATTERNS: dict[str, list[tuple[str, str, object, str]]] = {
    # (entity, pattern, validator, gate): the gate matches inside every match of the pattern (see `PatternDetector`).
    "email": [
        (
            "email",
            r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,4}\b",
            None,
            r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]",
        )
    ],
    "credit_card": [("credit_card", r"\b(?:\d[ -]?){12,18}\d\b", luhn, r"\d[ -]?\d[ -]?\d[ -]?\d")],
    "iban": [("iban", r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", iban_valid, r"[A-Z][A-Z]\d\d")],
    "ssn": [("ssn", r"\b\d{3}-\d{2}-\d{4}\b", ssn_valid, r"\d\d\d-\d\d-\d")],
    "phone": [
        # North American 3-3-4 (with or without the area code in parentheses); anything else needs its `+country`.
        ("phone", r"(?:\(\d{3}\)[ .-]?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b", phone_valid, r"\d\d\d[ .-]\d\d\d\d"),
        ("phone", r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}\b", phone_valid, r"\+\d"),
    ],
    "ip_address": [
        ("ip_address", rf"\b{_OCTET}(?:\.{_OCTET}){{3}}\b", ip_valid, r"\d\.\d"),
        ("ip_address", r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{1,4}\b", ip_valid, r":[0-9A-Fa-f]{0,4}:"),
    ],
}


def pii_detector(entities: list[str] | None) -> PatternDetector:
    chosen = entities or list(PII_PATTERNS)
    rows = [row for entity in PII_PATTERNS if entity in chosen for row in PII_PATTERNS[entity]]
    table = [(label, pattern, check) for label, pattern, check, _ in rows]
    # The window: the longest match any chosen pattern can make.
    return PatternDetector(table, gates=[gate for *_, gate in rows])
