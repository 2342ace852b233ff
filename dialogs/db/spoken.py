"""How database values are said aloud: dates relative to today, money, codes read character by character.

Everything here returns text meant for TTS ("12 dollars 99", "on Tuesday", "4 8 1 2").
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal


def _as_date(when: date | datetime) -> date:
    return when.date() if isinstance(when, datetime) else when


def day_name(when: date | datetime, now: datetime) -> str:
    """'today', 'yesterday', 'tomorrow', a weekday within 6 days either side, else 'March 3' (with the
    year if it differs from ``now``'s)."""
    d, today = _as_date(when), now.date()
    delta = (d - today).days
    if delta == 0:
        return "today"
    if delta == -1:
        return "yesterday"
    if delta == 1:
        return "tomorrow"
    if -7 < delta < 7:
        return d.strftime("%A")
    text = f"{d.strftime('%B')} {d.day}"
    return text if d.year == today.year else f"{text}, {d.year}"


def on_day(when: date | datetime, now: datetime) -> str:
    """``day_name`` with 'on' where English needs it: 'today', 'on Tuesday', 'on March 3'."""
    name = day_name(when, now)
    return name if name in ("today", "yesterday", "tomorrow") else f"on {name}"


def month_name(when: date | datetime) -> str:
    return _as_date(when).strftime("%B")


def money(amount: Decimal | float | int) -> str:
    """'12 dollars 99', '5 dollars', '99 cents', '1 dollar 05'."""
    cents_total = int((Decimal(str(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    sign = "minus " if cents_total < 0 else ""
    dollars, cents = divmod(abs(cents_total), 100)
    unit = "dollar" if dollars == 1 else "dollars"
    if dollars == 0:
        return f"{sign}{cents} cent" + ("" if cents == 1 else "s")
    if cents == 0:
        return f"{sign}{dollars} {unit}"
    return f"{sign}{dollars} {unit} {cents:02d}"


def spell(code: str) -> str:
    """A code read one character at a time: 'RMA7K' -> 'R M A 7 K'."""
    return " ".join(ch for ch in code if not ch.isspace() and ch != "-")


def mask_email(email: str) -> str:
    """'jane.doe@example.com' -> 'j***@example.com' (enough to recognise, not enough to harvest)."""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"
