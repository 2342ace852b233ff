"""Redaction of payment and identity data in the text of calls, before it is stored or shown.

A caller may read out a card number, its security code or a social security number; none of them
belongs in a call record, a transcript on a dashboard or a log. The default patterns (``privacy:`` in
``voicebot.yaml``) catch:

- payment card numbers: 13 to 19 digits, optionally grouped by spaces, dashes, commas or dots (Whisper writes
  "4,111,111,111,111"), *and* passing the Luhn check, so a five-digit order number or a ten-digit phone number
  is left alone;
- any run of 8 or more digits shortly after "card", "credit", "debit", "Visa" ...: speech recognition often
  drops or changes a digit of a card number read out, which then fails the Luhn check but is still most of
  the card number;
- security codes (CVV, CVC, "security code") of 3 or 4 digits after those words;
- US social security numbers written 123-45-6789 / 123 45 6789, or nine digits after "social security"
  / "SSN".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DEFAULT_PATTERNS: list[dict[str, Any]] = [
    {
        "name": "card_number",
        # 13-19 digits, single spaces or dashes allowed between them; digits around it are not part of it.
        "pattern": r"(?<![\d,.-])\d(?:[ ,.-]?\d){12,18}(?!\d)",
        "replace": "[card number]",
        "luhn": True,
    },
    {
        "name": "card_number_after_card_words",
        "pattern": r"(?i)\b(card|credit|debit|visa|master ?card|amex|american express)\b(\D{0,30}?)"
                   r"\d(?:[ ,.-]?\d){7,18}(?!\d)",
        "replace": r"\1\2[card number]",
        "luhn": False,
    },
    {
        "name": "security_code",
        "pattern": r"(?i)\b(cvv2?|cvc2?|csc|security code|card verification (?:code|value))\b(\D{0,20}?)"
                   r"\d(?:[ -]?\d){2,3}\b",
        "replace": r"\1\2[security code]",
        "luhn": False,
    },
    {
        "name": "ssn",
        "pattern": r"(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])",
        "replace": "[ssn]",
        "luhn": False,
    },
    {
        "name": "ssn_spoken",
        "pattern": r"(?i)\b(social security(?: number)?|ssn)\b(\D{0,20}?)\d(?:[ -]?\d){8}\b",
        "replace": r"\1\2[ssn]",
        "luhn": False,
    },
]

_SEPARATED = re.compile(r"[ -]")


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check used by payment card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass(frozen=True)
class _Rule:
    name: str
    regex: re.Pattern[str]
    replace: str
    luhn: bool


def _card_span(text: str) -> tuple[int, int] | None:
    """The longest run of whole digit groups in ``text`` with 13-19 digits passing Luhn, as (start, end).

    A card number read out next to another number ("4111 1111 1111 1111 12") matches the pattern as
    one 18-digit run that fails Luhn; the card inside it is still found.
    """
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", text)]
    best: tuple[int, int] | None = None
    for i in range(len(groups)):
        digits = ""
        for j in range(i, len(groups)):
            digits += text[groups[j][0]:groups[j][1]]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_ok(digits):
                span = (groups[i][0], groups[j][1])
                if best is None or span[1] - span[0] > best[1] - best[0]:
                    best = span
    return best


class Redactor:
    """Replaces what the rules match. ``Redactor.disabled()`` changes nothing."""

    def __init__(self, rules: Iterable[dict[str, Any] | Any] = (), enabled: bool = True):
        self.enabled = enabled
        self.rules: list[_Rule] = []
        for rule in rules:
            spec = rule if isinstance(rule, dict) else rule.model_dump()
            self.rules.append(_Rule(spec["name"], re.compile(spec["pattern"]), spec.get("replace", "[redacted]"),
                                    bool(spec.get("luhn", False))))

    @classmethod
    def default(cls) -> Redactor:
        return cls(DEFAULT_PATTERNS)

    @classmethod
    def disabled(cls) -> Redactor:
        return cls((), enabled=False)

    @classmethod
    def from_settings(cls, settings: Any) -> Redactor:
        """The redactor of ``settings.privacy`` (``redact: false`` gives one that changes nothing)."""
        privacy = getattr(settings, "privacy", None)
        if privacy is None:
            return cls.default()
        return cls(privacy.redact_patterns, enabled=privacy.redact)

    def text(self, text: str) -> str:
        """``text`` with every match of every rule replaced."""
        if not self.enabled or not text:
            return text
        for rule in self.rules:
            if rule.luhn:
                text = rule.regex.sub(functools.partial(self._luhn_sub, rule=rule), text)
            else:
                text = rule.regex.sub(rule.replace, text)
        return text

    @staticmethod
    def _luhn_sub(match: re.Match[str], rule: _Rule) -> str:
        found = match.group(0)
        span = _card_span(found)
        if span is None:
            return found
        return found[:span[0]] + match.expand(rule.replace) + found[span[1]:]

    def value(self, value: Any) -> Any:
        """``value`` with every string inside it (dicts, lists, nested) redacted; other types unchanged."""
        if not self.enabled:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, int) and not isinstance(value, bool) and 13 <= len(str(abs(value))) <= 19:
            # A number slot the NLU parsed out of a read-out card number is a card number too.
            redacted = self.text(str(value))
            return value if redacted == str(value) else redacted
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        return value

    def turn(self, turn: dict[str, Any]) -> dict[str, Any]:
        """A stored turn (API output) with its text, intents and extra redacted."""
        if not self.enabled:
            return turn
        out = dict(turn)
        for key in ("text", "intents", "extra"):
            if key in out:
                out[key] = self.value(out[key])
        return out

    def call(self, record: dict[str, Any]) -> dict[str, Any]:
        """A call record (API output) with the text of its turns and hand-off transcript redacted."""
        if not self.enabled:
            return record
        out = dict(record)
        if isinstance(out.get("turns"), list):
            out["turns"] = [self.turn(t) if isinstance(t, dict) else t for t in out["turns"]]
        for key in ("transfer", "handoff", "scorecard", "notes"):
            if isinstance(out.get(key), (dict, list)):
                out[key] = self.value(out[key])
        return out
