"""Supervisor alerts as objects with a lifecycle: raised, acknowledged, assigned, resolved.

:class:`~voicebot.live.LiveCalls` raises an alert (an ``alert`` event with an ``id``) when a caller's frustration
crosses the configured level or a queued caller waits too long. :class:`AlertBook` listens to the bus, stores
each alert (table ``voicebot_alerts``), resolves a call's alerts when the call ends, and lets a supervisor
acknowledge an alert or assign it to a user. Every change is published as ``alert.updated`` ``{call_id, alert}``
so every dashboard shows the same state; a reloaded dashboard reads it back with :meth:`AlertBook.list`. An
assignment that takes the alert from another user adds ``withdrawn_from`` (that user), so their page drops it.

An alert's id is derived from its call, kind and count on that call, so every node of a cluster (each folds the
same events) names the same alert the same way and stores it once.

All database work runs on one worker thread, in the order asked: an acknowledgement asked right after the
``alert`` event finds the alert stored.
"""

from __future__ import annotations

import asyncio
import builtins  # AlertBook.list shadows list in the class body (annotations)
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from voicebot.events import Event, EventBus
from voicebot.storage.models import AlertRow

log = logging.getLogger(__name__)

KINDS = ("frustration", "wait")
T = TypeVar("T")


class UnknownAlert(LookupError):
    """No alert by that id."""


class AlertConflict(ValueError):
    """The alert cannot change as asked (already acknowledged); the message says why."""


def alert_id(call_id: str, kind: str, n: int) -> str:
    """The id of the ``n``-th alert of ``kind`` on ``call_id`` (URL-safe, the same on every node)."""
    return hashlib.sha256(f"{call_id}\n{kind}\n{n}".encode()).hexdigest()[:20]


def _aware(dt: datetime | None) -> datetime | None:
    return dt if dt is None or dt.tzinfo is not None else dt.replace(tzinfo=UTC)  # SQLite drops the zone


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


@dataclass
class Alert:
    """One alert and what was done about it (``as_dict`` is the API's and the ``alert.updated`` event's JSON)."""

    id: str
    kind: str
    message: str
    raised_at: datetime
    call_id: str | None = None
    queue: str | None = None
    acked_by: str | None = None
    acked_at: datetime | None = None
    assigned_to: str | None = None
    assigned_by: str | None = None
    assigned_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def open(self) -> bool:
        """Not resolved yet (its call is still in progress)."""
        return self.resolved_at is None

    @classmethod
    def from_row(cls, row: AlertRow) -> Alert:
        raised_at = _aware(row.raised_at)
        assert raised_at is not None
        return cls(id=row.id, kind=row.kind, message=row.message, raised_at=raised_at, call_id=row.call_id,
                   queue=row.queue, acked_by=row.acked_by, acked_at=_aware(row.acked_at),
                   assigned_to=row.assigned_to, assigned_by=row.assigned_by, assigned_at=_aware(row.assigned_at),
                   resolved_at=_aware(row.resolved_at))

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "kind": self.kind, "message": self.message, "call_id": self.call_id, "queue": self.queue,
            "raised_at": _iso(self.raised_at), "acked_by": self.acked_by, "acked_at": _iso(self.acked_at),
            "assigned_to": self.assigned_to, "assigned_by": self.assigned_by, "assigned_at": _iso(self.assigned_at),
            "resolved_at": _iso(self.resolved_at), "open": self.open,
        }


class AlertBook:
    """The alerts of the service in the database, kept up to date from ``bus`` (see the module docstring).

    ``clock`` gives the time of acknowledgements, assignments and resolutions (an alert's ``raised_at`` is its
    event's ``ts``)."""

    def __init__(self, engine: Engine, bus: EventBus, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.bus = bus
        self.clock = clock
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alerts")
        self._attached = False
        self._closed = False

    def attach(self) -> None:
        """Start listening to the bus (idempotent)."""
        if not self._attached:
            self._attached = True
            self.bus.add_listener(self.on_event)

    def close(self) -> None:
        """Stop taking events; what was queued is still written."""
        self._closed = True
        self._worker.shutdown(wait=True)

    # --- the bus listener (on the bus's loop: queues the work, never waits for the database) ----------------
    def on_event(self, event: Event) -> None:
        if self._closed:
            return
        kind = event.get("type")
        if kind == "alert" and isinstance(event.get("id"), str):
            self._submit(self._store, event)
        elif kind == "call.ended" and isinstance(event.get("call_id"), str):
            self._submit(self._resolve_call, event["call_id"])

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        def work() -> None:
            try:
                fn(*args)
            except Exception:  # a locked database: the alert is still on every dashboard, just not stored
                log.exception("alerts: %s failed", fn.__name__)

        self._worker.submit(work)

    # --- what supervisors do (coroutines: the work runs on the worker thread) -------------------------------
    async def list(self, *, open_only: bool = False, assigned_to: str | None = None, limit: int = 200) -> list[Alert]:
        """Alerts newest first; only unresolved ones with ``open_only``; only those assigned to ``assigned_to``."""
        return await self._run(self._list, open_only, assigned_to, limit)

    async def get(self, alert_id: str) -> Alert | None:
        return await self._run(self._get, alert_id)

    async def ack(self, alert_id: str, username: str) -> Alert:
        """``username`` has seen the alert. Raises UnknownAlert, or AlertConflict if someone acknowledged it."""
        return await self._run(self._ack, alert_id, username)

    async def assign(self, alert_id: str, user: str, by: str) -> Alert:
        """``by`` gives the alert to ``user`` (another assignment replaces it). Raises UnknownAlert."""
        return await self._run(self._assign, alert_id, user, by)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    # --- on the worker thread -----------------------------------------------------------------------------
    def _store(self, event: Event) -> None:
        kind = str(event.get("kind") or "alert")[:16]
        ts = event.get("ts")
        raised_at = datetime.fromtimestamp(float(ts), UTC) if isinstance(ts, (int, float)) else self.clock()
        with self._sessions() as session, session.begin():
            if session.get(AlertRow, event["id"]) is not None:
                return  # another node of the cluster stored it
            session.add(AlertRow(id=event["id"], kind=kind, call_id=event.get("call_id"), queue=event.get("queue"),
                                 message=str(event.get("message") or ""), raised_at=raised_at))

    def _resolve_call(self, call_id: str) -> None:
        now = self.clock()
        with self._sessions() as session, session.begin():
            rows = session.scalars(select(AlertRow).where(AlertRow.call_id == call_id,
                                                          AlertRow.resolved_at.is_(None))).all()
            for row in rows:
                row.resolved_at = now
            resolved = [Alert.from_row(row) for row in rows]
        for alert in resolved:
            self._publish(alert)

    def _list(self, open_only: bool, assigned_to: str | None, limit: int) -> builtins.list[Alert]:
        query = select(AlertRow).order_by(AlertRow.raised_at.desc(), AlertRow.id).limit(limit)
        if open_only:
            query = query.where(AlertRow.resolved_at.is_(None))
        if assigned_to is not None:
            query = query.where(AlertRow.assigned_to == assigned_to)
        with self._sessions() as session:
            return [Alert.from_row(row) for row in session.scalars(query)]

    def _get(self, alert_id: str) -> Alert | None:
        with self._sessions() as session:
            row = session.get(AlertRow, alert_id)
            return Alert.from_row(row) if row is not None else None

    def _change(self, alert_id: str, change: Callable[[AlertRow], str | None]) -> Alert:
        """Apply ``change`` to the stored alert and publish it; ``change`` returns the user it took the alert
        from, if any."""
        with self._sessions() as session, session.begin():
            row = self._row(session, alert_id)
            withdrawn_from = change(row)
            alert = Alert.from_row(row)
        self._publish(alert, withdrawn_from)
        return alert

    def _ack(self, alert_id: str, username: str) -> Alert:
        def ack(row: AlertRow) -> None:
            if row.acked_by is not None:
                raise AlertConflict(f"alert {alert_id} was acknowledged by {row.acked_by} already")
            row.acked_by, row.acked_at = username, self.clock()

        return self._change(alert_id, ack)

    def _assign(self, alert_id: str, user: str, by: str) -> Alert:
        def assign(row: AlertRow) -> str | None:
            previous = row.assigned_to
            row.assigned_to, row.assigned_by, row.assigned_at = user, by, self.clock()
            return previous if previous not in (None, user) else None

        return self._change(alert_id, assign)

    @staticmethod
    def _row(session: Session, alert_id: str) -> AlertRow:
        row = session.get(AlertRow, alert_id)
        if row is None:
            raise UnknownAlert(alert_id)
        return row

    def _publish(self, alert: Alert, withdrawn_from: str | None = None) -> None:
        extra = {"withdrawn_from": withdrawn_from} if withdrawn_from is not None else {}
        self.bus.publish("alert.updated", call_id=alert.call_id, alert=alert.as_dict(), **extra)

