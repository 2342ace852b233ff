"""Repair: what the caller's words correct at a confirmation ("no, it's 21 Oak Street", "the other order",
"the reason"), and which of their orders "the other one" is."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from dialogs.db.models import Order

# "no, I meant the other order", "the other one"
OTHER_ORDER = re.compile(r"\b(?:the )?other (?:order|one|parcel|package)\b", re.IGNORECASE)
# A question in the caller's words ("what would it cost to keep it?"): answered later, never a failed answer.
QUESTION = re.compile(
    r"\?|(?:^|[,.;]\s*|\b(?:no|yes|actually|but|and|so|well)\s+)"
    r"(?:what|why|how|when|where|who|which|can|could|would|will|do|does|is|are)\b",
    re.IGNORECASE,
)
# The refund of a return, as opposed to a charge on the bill.
REFUND = re.compile(r"\b(?:refund|money back|reimburse\w*)\b", re.IGNORECASE)
CHARGE = re.compile(r"\b(?:charge[sd]?|twice|double|invoice|bill|subscription)\b", re.IGNORECASE)

# How a slot type is named when the caller is asked which detail to change.
SLOT_LABELS = {
    "order_number": "the order number", "reason": "the reason", "address": "the address",
    "postcode": "the postcode", "email": "the e-mail address", "date": "the date", "phone": "the phone number",
}
# Words by which a caller names a detail ("the reason is wrong", "change the order number").
_SLOT_WORDS = {
    "order_number": r"order|number", "reason": r"reason|why", "address": r"address|street",
    "postcode": r"post ?code|zip", "email": r"e-?mail", "date": r"date|day", "phone": r"phone",
}


def slot_named(text: str, slot_types: dict[str, str]) -> str | None:
    """The slot (of ``slot_types``: name -> type) the caller's words name, if exactly one."""
    named = [name for name, kind in slot_types.items()
             if kind in _SLOT_WORDS and re.search(rf"\b(?:{_SLOT_WORDS[kind]})\b", text, re.IGNORECASE)]
    return named[0] if len(named) == 1 else None


def other_order(session: Session, customer_id: int, current: str) -> str | None:
    """The customer's one other order when they have exactly two; None otherwise (then the bot asks)."""
    numbers = list(session.scalars(
        select(Order.number).where(Order.customer_id == customer_id).order_by(Order.placed_at.desc())
    ))
    others = [n for n in numbers if n != current]
    return others[0] if current in numbers and len(others) == 1 else None
