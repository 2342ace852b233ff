"""The remembered matter a caller confirms at the start of a call ("the return you started on Monday"): its
own state, read once the caller is verified."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from dialogs.db.models import Return
from dialogs.db.spoken import on_day
from dialogs.db.times import naive_utc


@dataclass(frozen=True)
class RecalledReturn:
    order_number: str
    status: str  # requested, label_sent, received, refunded ...
    started: str  # "on Monday"


def recalled_return(session: Session, return_id: int, customer_id: int, now: datetime) -> RecalledReturn | None:
    """The return as it is now, if it belongs to the verified customer."""
    ret = session.get(Return, return_id)
    if ret is None or ret.customer_id != customer_id:
        return None
    return RecalledReturn(ret.order.number, ret.status, on_day(ret.created_at, naive_utc(now)))
