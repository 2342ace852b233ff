"""Callback requests: callers who left a queue asking to be called back, kept in the database until an agent
has called them. Takes any SQLAlchemy Engine (SQLite file by default, PostgreSQL by config)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, Engine, Integer, String, inspect, or_, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

CallbackStatus = Literal["pending", "done", "failed", "cancelled"]
STATUSES = ("pending", "done", "failed", "cancelled")


class Base(DeclarativeBase):
    """Tables of the queue, kept apart from the call store and the customer database."""


class CallbackRow(Base):
    __tablename__ = "callback_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(128), index=True)
    caller: Mapped[str | None] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    handoff: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


@dataclass(frozen=True)
class CallbackRequest:
    """One callback request as plain data."""

    id: int
    call_id: str
    caller: str | None
    queue: str
    reason: str
    handoff: dict[str, Any]
    requested_at: dt.datetime
    status: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "caller": self.caller,
            "queue": self.queue,
            "reason": self.reason,
            "handoff": self.handoff,
            "requested_at": self.requested_at.isoformat(),
            "status": self.status,
        }


def _utc(value: dt.datetime) -> dt.datetime:
    # SQLite gives back naive datetimes; everything stored here is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _plain(row: CallbackRow) -> CallbackRequest:
    return CallbackRequest(
        row.id,
        row.call_id,
        row.caller,
        row.queue,
        row.reason,
        dict(row.handoff),
        _utc(row.requested_at),
        row.status,
    )


class CallbackStore:
    """Add, list and close callback requests. The application's migrations make the table; used alone (tests,
    the queue library without voicebot) :meth:`create_tables` makes it if it is missing."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def create_tables(self) -> None:
        Base.metadata.create_all(self.engine)

    def add(
        self,
        *,
        call_id: str,
        caller: str | None,
        queue: str,
        reason: str,
        handoff: Mapping[str, object],
        now: dt.datetime | None = None,
    ) -> int:
        """Record a pending request; returns its id. Values of ``handoff`` JSON cannot hold (dates, decimals)
        are stored as their text."""
        stored = json.loads(json.dumps(dict(handoff), default=str))
        row = CallbackRow(
            call_id=call_id,
            caller=caller,
            queue=queue,
            reason=reason,
            handoff=stored,
            requested_at=now or dt.datetime.now(dt.UTC),
            status="pending",
        )
        with Session(self.engine) as s, s.begin():
            s.add(row)
            s.flush()
            return row.id

    def requests(self, *, queue: str | None = None, status: str | None = "pending") -> list[CallbackRequest]:
        """Requests, oldest first, filtered by queue and status (None: any)."""
        q = select(CallbackRow).order_by(CallbackRow.requested_at, CallbackRow.id)
        if queue is not None:
            q = q.where(CallbackRow.queue == queue)
        if status is not None:
            q = q.where(CallbackRow.status == status)
        with Session(self.engine) as s:
            return [_plain(r) for r in s.scalars(q)]

    def get(self, request_id: int) -> CallbackRequest | None:
        with Session(self.engine) as s:
            row = s.get(CallbackRow, request_id)
            return _plain(row) if row else None

    def set_status(self, request_id: int, status: str, now: dt.datetime | None = None) -> bool:
        """Mark a request done, failed, cancelled or pending again. False if there is no such request;
        ValueError for an unknown status."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        with Session(self.engine) as s, s.begin():
            row = s.get(CallbackRow, request_id)
            if row is None:
                return False
            row.status = status
            row.updated_at = now or dt.datetime.now(dt.UTC)
            return True


def erase_callbacks(session: Session, call_ids: Collection[str], numbers: Collection[str]) -> int:
    """Right to erasure: blank the number and the hand-off packet (summary, transcript, customer) of the callback
    requests of these calls or from these numbers; pending ones are cancelled, as there is no one left to call.
    Returns how many requests were erased (0 where the table was never made). Does not commit."""
    if not inspect(session.connection()).has_table(CallbackRow.__tablename__):
        return 0
    whose = or_(CallbackRow.call_id.in_(list(call_ids)), CallbackRow.caller.in_([n for n in numbers if n]))
    ids = list(session.scalars(select(CallbackRow.id).where(whose)))
    if ids:
        session.execute(update(CallbackRow).where(CallbackRow.id.in_(ids), CallbackRow.status == "pending")
                        .values(status="cancelled", updated_at=dt.datetime.now(dt.UTC)))
        session.execute(update(CallbackRow).where(CallbackRow.id.in_(ids)).values(caller=None, handoff={}))
    return len(ids)
