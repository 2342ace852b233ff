"""The one way to record a call: open it, add turns as they happen, close it with an outcome.

Writes go through one dedicated thread so a slow disk (SQLite commits fsync) never stalls the audio of
the event loop, and SQLite sees one writer at a time.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from voicebot.events import EventBus
from voicebot.storage.migrate import add_missing_columns
from voicebot.storage.models import Base, CallRow, TurnRow

log = logging.getLogger(__name__)

SPEAKERS = ("caller", "bot", "agent")  # agent: a human agent, once bridged after a hand-off


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:  # SQLite drops the zone; everything is stored in UTC
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat()


class CallStore:
    """Call records in a SQLAlchemy database. Sync methods may block; ``a*`` methods run in the writer."""

    def __init__(self, engine: Engine, events: EventBus | None = None):
        self.engine = engine
        self.events = events  # told of every write once it is committed (voicebot.events)
        Base.metadata.create_all(engine)
        add_missing_columns(engine, Base.metadata)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voicebot-calls")

    @classmethod
    def from_url(cls, url: str) -> CallStore:
        """A store on its own engine (for tools and tests without a dialog engine)."""
        return cls(create_engine(url))

    # writes

    def open_call(self, call_id: str, channel: str, caller_id: str | None, dialled: str | None = None) -> None:
        """Create the record of a call that starts now."""
        start = utcnow()
        with self._sessions.begin() as s:
            s.add(CallRow(id=call_id, channel=channel, caller_id=caller_id, dialled=dialled, start=start))
        if self.events is not None:
            self.events.publish("call.started", call_id=call_id, call={
                "id": call_id, "channel": channel, "caller_id": caller_id, "dialled": dialled, "start": _iso(start)})

    def add_turn(
        self,
        call_id: str,
        speaker: str,
        text: str,
        start: datetime,
        end: datetime | None = None,
        intents: list[dict[str, Any]] | None = None,
        latency_ms: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Append a turn; returns its row id (to update its end or intents later)."""
        if speaker not in SPEAKERS:
            raise ValueError(f"speaker must be one of {SPEAKERS}, not {speaker!r}")
        with self._sessions.begin() as s:
            seq = s.scalar(select(func.count()).where(TurnRow.call_id == call_id)) or 0
            row = TurnRow(
                call_id=call_id,
                seq=seq,
                speaker=speaker,
                text=text,
                start=start,
                end=end,
                intents=intents or [],
                latency_ms=latency_ms,
                extra=extra or {},
            )
            s.add(row)
            s.flush()
            turn = _turn_dict(row)
        if self.events is not None:
            self.events.publish("turn", call_id=call_id, turn=turn)
        return turn["id"]

    def update_turn(self, turn_id: int, **fields: Any) -> None:
        """Change fields of a turn (``end``, ``intents``, ``extra`` ...); ``extra`` is merged."""
        with self._sessions.begin() as s:
            row = s.get(TurnRow, turn_id)
            if row is None:
                return
            for key, value in fields.items():
                if key == "extra":
                    row.extra = {**(row.extra or {}), **value}
                else:
                    setattr(row, key, value)
            call_id = row.call_id
        if self.events is not None:
            changed = {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in fields.items()}
            self.events.publish("turn.updated", call_id=call_id, turn_id=turn_id, fields=changed)

    def close_call(self, call_id: str, outcome: str, reason: str) -> None:
        """Close a call: set its end, outcome and reason, and end any turn left open. Idempotent."""
        now = utcnow()
        with self._sessions.begin() as s:
            row = s.get(CallRow, call_id)
            if row is None or row.end is not None:
                return
            row.end = now
            row.outcome = outcome
            row.end_reason = reason
            for turn in s.scalars(select(TurnRow).where(TurnRow.call_id == call_id, TurnRow.end.is_(None))):
                turn.end = now
        if self.events is not None:
            self.events.publish("call.ended", call_id=call_id, outcome=outcome, end_reason=reason, end=_iso(now))

    def close_stale(self) -> int:
        """Close calls left open by a crashed process (outcome ``abandoned``); returns how many."""
        with self._sessions.begin() as s:
            ids = list(s.scalars(select(CallRow.id).where(CallRow.end.is_(None))))
        for call_id in ids:
            self.close_call(call_id, outcome="abandoned", reason="server_restart")
        return len(ids)

    async def arun(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run a write method in the writer thread; errors are logged, never raised into a call."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._writer, lambda: getattr(self, method)(*args, **kwargs))
        except Exception:
            log.exception("call store: %s failed", method)
            return None

    # reads

    def get(self, call_id: str) -> dict[str, Any] | None:
        """One call record as JSON-ready data, or None."""
        with Session(self.engine) as s:
            row = s.scalar(select(CallRow).where(CallRow.id == call_id).options(selectinload(CallRow.turns)))
            return None if row is None else _call_dict(row, with_turns=True)

    def list(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Calls, newest first, without their turns."""
        with Session(self.engine) as s:
            rows = s.scalars(select(CallRow).order_by(CallRow.start.desc()).limit(limit).offset(offset))
            return [_call_dict(r, with_turns=False) for r in rows]

    def close(self) -> None:
        self._writer.shutdown(wait=True)


def _call_dict(row: CallRow, with_turns: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id,
        "channel": row.channel,
        "caller_id": row.caller_id,
        "dialled": row.dialled,
        "start": _iso(row.start),
        "end": _iso(row.end),
        "outcome": row.outcome,
        "end_reason": row.end_reason,
    }
    if with_turns:
        out["turns"] = [_turn_dict(t, with_ids=False) for t in row.turns]
    return out


def _turn_dict(t: TurnRow, with_ids: bool = True) -> dict[str, Any]:
    return {
        **({"id": t.id, "seq": t.seq} if with_ids else {}),
        "speaker": t.speaker,
        "text": t.text,
        "start": _iso(t.start),
        "end": _iso(t.end),
        "intents": t.intents or [],
        "latency_ms": t.latency_ms,
        **({"extra": t.extra} if t.extra else {}),
    }
