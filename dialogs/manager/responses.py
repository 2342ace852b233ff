"""Choosing and filling the domain's responses: a variant per style, placeholders from slots and data."""

from __future__ import annotations

import logging
import random
import re
import string
from typing import Any

from dialogs.domain.schema import Domain

log = logging.getLogger(__name__)

_FIELD = string.Formatter()


class _Defaulting(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        log.warning("response placeholder {%s} has no value", key)
        return ""


def spoken(value: Any) -> str:
    """How a value is read out: digit strings digit by digit ("4 5 2 8 1"), dates as 'Tuesday, March 3'."""
    if hasattr(value, "strftime"):
        return f"{value.strftime('%A, %B')} {value.day}"
    text = str(value)
    if text.isdigit() and len(text) >= 4:
        return " ".join(text)
    if re.fullmatch(r"[a-z]+(_[a-z]+)+", text):  # a code such as wrong_size
        return text.replace("_", " ")
    return text


class Responder:
    """Renders named responses of a domain. Randomness comes in as ``rng`` so tests are repeatable."""

    def __init__(self, domain: Domain, rng: random.Random):
        self.domain = domain
        self.rng = rng

    def has(self, name: str) -> bool:
        return name in self.domain.responses

    def render(self, name: str, style: str = "default", values: dict[str, Any] | None = None) -> str:
        variants = self.domain.responses[name]
        chosen = [v for v in variants if v.style == style] or [v for v in variants if v.style == "default"]
        chosen = chosen or list(variants)
        template = self.rng.choice(chosen).text
        vals = _Defaulting()
        for k, v in (values or {}).items():
            vals[k] = v
            vals.setdefault(f"{k}_spoken", spoken(v))
        text = template.format_map(vals)
        # A placeholder that was empty can leave doubled spaces or a space before a full stop.
        return re.sub(r"\s+([.,?!])", r"\1", re.sub(r"\s{2,}", " ", text)).strip()
