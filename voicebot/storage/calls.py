"""The one way to record a call: open it, add turns as they happen, close it with an outcome.

Writes go through one dedicated thread so a slow disk (SQLite commits fsync) never stalls the audio of
the event loop, and SQLite sees one writer at a time. They are queued in order and retried while the database
is locked or unreachable, so a call never waits for the database and no turn is lost (up to a bounded backlog).

Each write's event (``call.started``, ``turn``, ``turn.updated``, ``call.ended``) is published once the write is
committed; while the database is unavailable, the events of the writes waiting for it are published at once
instead (a turn with its placeholder id and no ``seq``), so dashboards follow the call live, and not again when
the write lands.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Collection, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, String, cast, create_engine, exists, func, or_, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from voicebot.events import EventBus
from voicebot.recording import repair_wav
from voicebot.redaction import Redactor
from voicebot.storage.models import CallIntentRow, CallNoteRow, CallRow, RecordingRow, TurnRow

if TYPE_CHECKING:
    from voicebot.qa.scorecard import Scorer

log = logging.getLogger(__name__)

SPEAKERS = ("caller", "bot", "agent")  # agent: a human agent, once bridged after a hand-off
# Dialogue acts the NLU reports like intents (dialogs.manager.state.ACTS but out_of_scope): not what a call is
# about, so they stay out of a call's intent list (the turns keep them).
DIALOGUE_ACTS = frozenset({"greet", "goodbye", "affirm", "deny", "thanks", "repeat"})
# Upper bounds (ms) of the reply-latency histogram of `stats`; the last bucket is everything above.
LATENCY_BUCKETS_MS = (250, 500, 750, 1000, 1250, 1500, 2000, 3000, 5000)
# (an alias: inside CallStore, `list` names its method)
CallRows = list[dict[str, Any]]
# Recording states (RecordingRow.consent) with a file to play: complete, or cut short by a process that died.
PLAYABLE = frozenset({"recorded", "interrupted"})
MAX_STATS_HOURS = 24 * 92  # hours filled in per-hour series (a quarter); longer ranges list only hours with calls


MAX_RETRY_DELAY_S = 2.0  # a write waiting for the database is retried at least this often
REMEMBER_TURNS = 10000  # turn ids whose call is known without the database (for live turn.updated events)


@dataclass
class _Write:
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    future: Future[Any] = field(default_factory=Future)
    placeholder: int | None = None  # the turn id add_turn answered before its row existed
    live: bool = False  # its event went out before it landed (the database was unavailable)
    landed: bool = False  # its event went out after it was committed


def _unavailable(exc: Exception) -> bool:
    """The database is locked, gone or unreachable (worth retrying), not a bad write."""
    return isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:  # SQLite drops the zone; everything is stored in UTC
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat()


class CallStore:
    """Call records in a SQLAlchemy database. Sync methods may block; ``a*`` methods run in the writer.

    The tables must exist: :func:`voicebot.storage.schema.upgrade` makes them (``from_url`` calls it)."""

    def __init__(
        self,
        engine: Engine,
        events: EventBus | None = None,
        redactor: Redactor | None = None,
        *,
        max_backlog: int = 10000,
        answer_within_s: float = 0.5,
        node_id: str | None = None,
        scorer: Scorer | None = None,
    ):
        self.engine = engine
        self.node_id = node_id or None  # the cluster node this process is (cluster.node_id), stored on its calls
        self.events = events  # told of every write once it is committed (voicebot.events)
        # Card numbers, security codes ... are replaced in the text, intents and extra of every turn before it
        # is stored, so neither the database nor the `turn` events ever hold them (privacy: in voicebot.yaml).
        self.redactor = redactor if redactor is not None else Redactor.default()
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.max_backlog = max_backlog  # writes waiting for an unavailable database; more are dropped (logged)
        self.answer_within_s = answer_within_s  # a call waits at most this long for a write's result
        self.scorer = scorer  # scores each call as its record closes (voicebot.qa); None: no scorecards
        self._writes: queue.Queue[_Write | None] = queue.Queue()
        self._placeholders: dict[int, int] = {}  # placeholder turn id -> row id, once the turn is written
        self._next_placeholder = -1
        self._giving_up_at: float | None = None  # set by close(): retries end then
        # Live events while the database is unavailable (see the module docstring); all under _events_lock.
        self._events_lock = threading.RLock()  # a listener of a live event may queue a write
        self._unavailable = False  # the writer waits for the database
        self._unlanded: deque[_Write] = deque()  # queued writes not performed yet, in order
        self._event_ids: dict[int, int] = {}  # row id -> the placeholder id its live `turn` event carried
        self._call_of_turn: OrderedDict[int, str] = OrderedDict()  # recent turn ids (row or placeholder) -> call
        self._performing = threading.local()  # the write the writer thread is performing
        self._worker = threading.Thread(target=self._write_loop, name="voicebot-calls", daemon=True)
        self._worker.start()

    @classmethod
    def from_url(cls, url: str) -> CallStore:
        """A store on its own engine (for tools and tests without a dialog engine), the database upgraded first."""
        from voicebot.storage.schema import upgrade

        engine = create_engine(url)
        upgrade(engine)
        return cls(engine)

    # writes

    def open_call(self, call_id: str, channel: str, caller_id: str | None, dialled: str | None = None) -> None:
        """Create the record of a call that starts now."""
        start = utcnow()
        with self._sessions.begin() as s:
            s.add(CallRow(id=call_id, channel=channel, caller_id=caller_id, dialled=dialled, start=start,
                          node_id=self.node_id))
        self._publish("call.started", call_id=call_id, call=self._call_started(call_id, channel, caller_id, dialled,
                                                                                 start))

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
        text, intents, extra = self.redactor.text(text), self.redactor.value(intents), self.redactor.value(extra)
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
            if speaker == "caller":
                _summarise_turn(s, call_id, intents or [], extra or {})
            s.flush()
            turn = _turn_dict(row)
        self._remember_turn(turn["id"], call_id)
        self._publish("turn", call_id=call_id, turn=turn)
        return turn["id"]

    def update_turn(self, turn_id: int, **fields: Any) -> None:
        """Change fields of a turn (``end``, ``intents``, ``extra`` ...); ``extra`` is merged."""
        fields = {k: (self.redactor.value(v) if k in ("text", "intents", "extra") else v) for k, v in fields.items()}
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
        changed = {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in fields.items()}
        self._publish("turn.updated", call_id=call_id, turn_id=self._event_ids.get(turn_id, turn_id), fields=changed)

    def set_customer(self, call_id: str, customer_id: int) -> None:
        """Note whom the bot identified on the call (for erasure and right-of-access exports)."""
        with self._sessions.begin() as s:
            row = s.get(CallRow, call_id)
            if row is not None:
                row.customer_id = customer_id

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
            s.execute(update(CallIntentRow).where(CallIntentRow.call_id == call_id)
                      .values(outcome=outcome, agent_id=row.agent_id))
        if self.scorer is not None:
            self.score_call(call_id)
        self._publish("call.ended", call_id=call_id, outcome=outcome, end_reason=reason, end=_iso(now))

    def score_call(self, call_id: str) -> dict[str, Any] | None:
        """(Re)compute and store the scorecard of a closed call; None if it is unknown, open or scoring is off.
        A scoring error is logged and leaves the call without a scorecard: it never fails the close."""
        if self.scorer is None:
            return None
        with self._sessions.begin() as s:
            row = s.scalar(select(CallRow).where(CallRow.id == call_id).options(selectinload(CallRow.turns)))
            if row is None or row.end is None:
                return None
            try:
                card = self.scorer.score(_call_dict(row, with_turns=True), handed_over=_handed_over(s, call_id))
            except Exception:
                log.exception("call %s: computing its scorecard failed", call_id)
                return None
            row.scorecard = card
            row.qa_results = [f"{i['name']}={i['result']}" for i in card["items"] if isinstance(i["result"], str)]
            return card

    def add_note(self, call_id: str, username: str, note: str, tags: Collection[str]) -> dict[str, Any] | None:
        """A reviewer's note and tags on a call; None if there is no such call."""
        with self._sessions.begin() as s:
            if s.get(CallRow, call_id) is None:
                return None
            row = CallNoteRow(call_id=call_id, at=utcnow(), username=username, note=note, tags=sorted(set(tags)))
            s.add(row)
            s.flush()
            return _note_dict(row)

    def set_taken_over(self, call_id: str, username: str, at: datetime) -> None:
        """Note on the call record that supervisor ``username`` took the call over from the bot at ``at``."""
        with self._sessions.begin() as s:
            s.execute(update(CallRow).where(CallRow.id == call_id).values(taken_over_by=username, taken_over_at=at))

    def set_agent(self, call_id: str, agent_id: str) -> None:
        """Note on the call record which agent took the call (history search and agents' own calls)."""
        with self._sessions.begin() as s:
            s.execute(update(CallRow).where(CallRow.id == call_id).values(agent_id=agent_id))
            s.execute(update(CallIntentRow).where(CallIntentRow.call_id == call_id).values(agent_id=agent_id))

    def close_stale(self, node_id: str | None = None, outcome: str = "interrupted",
                    reason: str = "server_restart") -> int:
        """Close calls left open by a process that died (``kill -9``, power cut): outcome ``interrupted``, ended at
        their last activity (the latest turn's start or end, else the call's start), so the downtime is not
        counted as call time; returns how many.

        In a cluster only the calls of ``node_id`` (default: this store's node) are closed: a starting node closes
        its own leftovers, a survivor a lost node's (outcome ``node_lost``); other nodes' live calls stay open.
        Their recordings still open are closed too (:meth:`_close_stale_recordings`)."""
        node = node_id or self.node_id
        closed: list[tuple[str, datetime]] = []
        query = select(CallRow).where(CallRow.end.is_(None))
        if node is not None:
            query = query.where(CallRow.node_id == node)
        with self._sessions.begin() as s:
            self._close_stale_recordings(s, node)  # before the turns are closed: who heard the announcement
            for row in s.scalars(query):
                starts, ends = s.execute(select(func.max(TurnRow.start), func.max(TurnRow.end))
                                         .where(TurnRow.call_id == row.id)).one()
                end = max(_utc(t) for t in (row.start, starts, ends) if t is not None)
                row.end, row.outcome, row.end_reason = end, outcome, reason
                for turn in s.scalars(select(TurnRow).where(TurnRow.call_id == row.id, TurnRow.end.is_(None))):
                    turn.end = end
                closed.append((row.id, end))
        for call_id, end in closed:
            self._publish("call.ended", call_id=call_id, outcome=outcome, end_reason=reason, end=_iso(end))
        return len(closed)

    async def arun(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Queue a write method for the writer thread and return its result; errors are logged, never raised.

        A write the database cannot take now (locked, unreachable) stays queued, in order, and is retried until
        it succeeds: the call goes on after ``answer_within_s`` with None, or for ``add_turn`` a placeholder turn
        id that ``update_turn`` accepts. Beyond ``max_backlog`` waiting writes new ones are dropped (logged)."""
        write = self._submit(method, args, kwargs)
        if write is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(write.future)), self.answer_within_s)
        except TimeoutError:
            return write.placeholder

    def _submit(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Write | None:
        if self._writes.qsize() >= self.max_backlog:
            log.error("call store: %d writes wait for the database; %s of call %s is dropped", self._writes.qsize(),
                      method, args[0] if args else "?")
            return None
        placeholder = None
        if method == "add_turn":
            placeholder, self._next_placeholder = self._next_placeholder, self._next_placeholder - 1
        write = _Write(method, args, kwargs, placeholder=placeholder)
        with self._events_lock:
            if placeholder is not None and args:
                self._call_of_turn[placeholder] = args[0]
            self._writes.put(write)
            self._unlanded.append(write)
            if self._unavailable:
                self._publish_live()
        return write

    # live events

    def _publish(self, type_: str, **data: Any) -> None:
        """Publish the event of a committed write, unless it went out live already (the database was down)."""
        if self.events is None:
            return
        write: _Write | None = getattr(self._performing, "write", None)
        if write is not None:
            with self._events_lock:
                if write.live:
                    return
                write.landed = True
        self.events.publish(type_, **data)

    def _publish_live(self) -> None:
        """Publish the events of the queued writes that have none out yet, in order (holding _events_lock)."""
        if self.events is None:
            return
        for write in list(self._unlanded):
            if write.live or write.landed:
                continue
            event = self._live_event(write)
            if event is not None:
                write.live = True
                self.events.publish(event[0], **event[1])

    def _live_event(self, write: _Write) -> tuple[str, dict[str, Any]] | None:
        """The event a queued write will publish once committed, from its arguments (no database)."""
        if write.method not in ("open_call", "add_turn", "update_turn", "close_call"):
            return None
        try:
            bound = inspect.signature(getattr(self, write.method)).bind(*write.args, **write.kwargs)
        except TypeError:
            return None  # the write itself fails, loudly, when performed
        bound.apply_defaults()
        a = bound.arguments
        if write.method == "open_call":
            return "call.started", {"call_id": a["call_id"], "call": self._call_started(
                a["call_id"], a["channel"], a["caller_id"], a["dialled"], utcnow())}
        if write.method == "add_turn":
            if a["speaker"] not in SPEAKERS or write.placeholder is None:
                return None
            extra = self.redactor.value(a["extra"])
            turn = {"id": write.placeholder, "seq": None, "speaker": a["speaker"], "text": self.redactor.text(a["text"]),
                    "start": _iso(a["start"]), "end": _iso(a["end"]), "intents": self.redactor.value(a["intents"]) or [],
                    "latency_ms": a["latency_ms"], **({"extra": extra} if extra else {})}
            return "turn", {"call_id": a["call_id"], "turn": turn}
        if write.method == "update_turn":
            call_id = self._call_of_turn.get(a["turn_id"])
            if call_id is None:
                return None  # a turn from long ago: its update goes out when written
            fields = {k: (self.redactor.value(v) if k in ("text", "intents", "extra") else v)
                      for k, v in a["fields"].items()}
            changed = {k: (_iso(v) if isinstance(v, datetime) else v) for k, v in fields.items()}
            return "turn.updated", {"call_id": call_id, "turn_id": self._event_ids.get(a["turn_id"], a["turn_id"]),
                                    "fields": changed}
        return "call.ended", {"call_id": a["call_id"], "outcome": a["outcome"], "end_reason": a["reason"],
                              "end": _iso(utcnow())}

    def _call_started(self, call_id: str, channel: str, caller_id: str | None, dialled: str | None,
                      start: datetime) -> dict[str, Any]:
        return {"id": call_id, "channel": channel, "caller_id": caller_id, "dialled": dialled, "start": _iso(start),
                "node": self.node_id}

    def _remember_turn(self, turn_id: int, call_id: str) -> None:
        with self._events_lock:
            self._call_of_turn[turn_id] = call_id
            while len(self._call_of_turn) > REMEMBER_TURNS:
                self._call_of_turn.popitem(last=False)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write queued so far is done (or given up); False if ``timeout`` passed first."""
        write = _Write("_nothing", (), {})
        self._writes.put(write)
        try:
            write.future.result(timeout)
        except TimeoutError:
            return False
        return True

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush` without blocking the event loop."""
        return await asyncio.to_thread(self.flush, timeout)

    def _nothing(self) -> None:
        return None

    def _write_loop(self) -> None:
        while (write := self._writes.get()) is not None:
            self._performing.write = write
            try:
                result = self._perform(write)
            finally:
                self._performing.write = None
                with self._events_lock:
                    if self._unlanded and self._unlanded[0] is write:
                        self._unlanded.popleft()
            write.future.set_result(result)

    def _perform(self, write: _Write) -> Any:
        """Run one write, retrying while the database is unavailable; never raises."""
        args = write.args
        if write.method == "update_turn" and args and isinstance(args[0], int) and args[0] < 0:
            row_id = self._placeholders.get(args[0])
            if row_id is None:
                log.error("call store: update of a turn that was never written is dropped")
                return None
            args = (row_id, *args[1:])
        delay, waiting_since = 0.05, None
        while True:
            try:
                result = getattr(self, write.method)(*args, **write.kwargs)
            except Exception as exc:
                if not _unavailable(exc):
                    log.exception("call store: %s failed", write.method)
                    return None
                if self._giving_up_at is not None and time.monotonic() > self._giving_up_at:
                    log.error("call store: the database is still unavailable at shutdown; %s is lost (%s)",
                              write.method, _reason(exc))
                    return None
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    with self._events_lock:
                        self._unavailable = True
                        self._publish_live()
                    log.warning("call store: database unavailable (%s); %s and the writes after it wait and are "
                                "retried", _reason(exc), write.method)
                time.sleep(delay)  # backoff of the worker thread while the database is locked or down
                delay = min(delay * 2, MAX_RETRY_DELAY_S)
                continue
            if waiting_since is not None:
                log.warning("call store: database available again after %.1f s; waiting writes go on",
                            time.monotonic() - waiting_since)
                with self._events_lock:
                    self._unavailable = False
            if write.placeholder is not None and isinstance(result, int):
                self._placeholders[write.placeholder] = result
                if write.live:  # later updates of the turn name it as its live event did
                    self._event_ids[result] = write.placeholder
            return result

    def open_recording(self, call_id: str, path: str) -> None:
        """A recording of the call starts now, into ``path``."""
        with self._sessions.begin() as s:
            s.merge(RecordingRow(call_id=call_id, path=path, bytes=0, duration_s=0.0, consent="recording",
                                 started_at=utcnow()))

    def close_recording(self, call_id: str, size: int, duration_s: float) -> None:
        """The recording of the call is complete: ``size`` bytes, ``duration_s`` long."""
        with self._sessions.begin() as s:
            row = s.get(RecordingRow, call_id)
            if row is not None and row.consent == "recording":
                row.consent, row.bytes, row.duration_s = "recorded", size, round(duration_s, 2)

    def decline_recording(self, call_id: str) -> None:
        """The caller declined: the record keeps that and when, without a file."""
        with self._sessions.begin() as s:
            row = s.get(RecordingRow, call_id)
            if row is None:
                row = RecordingRow(call_id=call_id, started_at=utcnow())
                s.add(row)
            row.consent, row.path, row.bytes, row.duration_s, row.declined_at = "declined", None, 0, 0.0, utcnow()

    def _close_stale_recordings(self, s: Session, node: str | None) -> None:
        """Close the recordings a dead process left open (consent ``recording``) of ``node``'s calls (every node's
        if None): kept as ``interrupted``, the file made readable, when the caller heard the announcement (the
        greeting was played to its end, or the caller spoke: a decline is understood at any turn); otherwise the
        file is deleted and the row says ``unannounced``. A file this machine does not have (a lost node's disk)
        stays named, as ``interrupted``, for that node to repair when it restarts."""
        query = (select(RecordingRow).join(CallRow, CallRow.id == RecordingRow.call_id)
                 .where(RecordingRow.consent == "recording"))
        if node is not None:
            query = query.where(CallRow.node_id == node)
        kept = deleted = 0
        for row in s.scalars(query):
            heard = s.scalar(select(exists().where(TurnRow.call_id == row.call_id, or_(
                TurnRow.speaker == "caller", (TurnRow.speaker == "bot") & TurnRow.end.is_not(None)))))
            path = Path(row.path) if row.path else None
            if heard and path is not None:
                repaired = repair_wav(path)
                if repaired is not None or not path.exists():
                    row.consent = "interrupted"
                    if repaired is not None:
                        row.bytes, row.duration_s = repaired.size, round(repaired.duration_s, 2)
                    kept += 1
                    continue
            if path is not None:
                path.unlink(missing_ok=True)
            row.consent, row.path, row.bytes, row.duration_s = "unannounced", None, 0, 0.0
            deleted += 1
        if kept or deleted:
            log.info("closed %d recording(s) left open by a process that died: %d kept as interrupted, %d deleted "
                     "(the caller had not heard the announcement, or no audio was written)", kept + deleted, kept,
                     deleted)

    def recording(self, call_id: str) -> RecordingRow | None:
        """The recording row of a call (detached), or None."""
        with Session(self.engine, expire_on_commit=False) as s:
            return s.get(RecordingRow, call_id)

    # reads

    def get(self, call_id: str) -> dict[str, Any] | None:
        """One call record as JSON-ready data, or None."""
        with Session(self.engine) as s:
            row = s.scalar(select(CallRow).where(CallRow.id == call_id).options(selectinload(CallRow.turns)))
            if row is None:
                return None
            out = _call_dict(row, with_turns=True)
            out["scorecard"] = row.scorecard
            notes = s.scalars(select(CallNoteRow).where(CallNoteRow.call_id == call_id).order_by(CallNoteRow.at))
            out["notes"] = [_note_dict(n) for n in notes]
            out["recording"] = _recording_dict(s.get(RecordingRow, call_id))
            return out

    def list(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Calls, newest first, without their turns."""
        with Session(self.engine) as s:
            rows = s.scalars(select(CallRow).order_by(CallRow.start.desc()).limit(limit).offset(offset))
            return [_call_dict(r, with_turns=False) for r in rows]

    def search(
        self,
        *,
        q: str | None = None,
        number: str | None = None,
        intent: str | None = None,
        outcome: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        min_frustration: float | None = None,
        agent_id: str | None = None,
        agent_calls: Collection[str] = (),
        qa: Collection[str] = (),
        tag: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[CallRows, int]:
        """Past and current calls matching every filter given, newest first, and how many match in all.

        ``q``: the call id, or words in the caller's number or in any turn's text (case-insensitive);
        ``number``: part of the caller's or the dialled number; ``intent``: an intent name the caller asked
        for; ``since`` / ``until``: the call started in ``[since, until)``; ``min_frustration``: the caller's
        highest frustration score reached it; ``agent_id``: the agent who took the call (or one of the
        ``agent_calls``, ids known from elsewhere to be theirs); ``qa``: scorecard items as ``name=result``
        (``ai_disclosure=fail``, ``containment=pass``, ``rule:cancellation_period=fail``), all must hold;
        ``tag``: a reviewer put this tag on the call.
        """
        conds: list[Any] = []
        if q:
            pattern = f"%{_like_escape(q.strip())}%"
            in_turns = exists().where(TurnRow.call_id == CallRow.id, TurnRow.text.ilike(pattern, escape="\\"))
            conds.append(or_(CallRow.id == q.strip(), CallRow.caller_id.ilike(pattern, escape="\\"), in_turns))
        if number:
            pattern = f"%{_like_escape(number.strip())}%"
            conds.append(or_(CallRow.caller_id.like(pattern, escape="\\"), CallRow.dialled.like(pattern, escape="\\")))
        if intent:
            # The JSON list is stored as text such as ["order_status", "refund"]: match the quoted name.
            pattern = f'%"{_like_escape(intent.strip())}"%'
            conds.append(cast(CallRow.intents, String).like(pattern, escape="\\"))
        if outcome:
            conds.append(CallRow.outcome == outcome)
        if since is not None:
            conds.append(CallRow.start >= _utc(since))
        if until is not None:
            conds.append(CallRow.start < _utc(until))
        if min_frustration is not None:
            conds.append(CallRow.frustration_max >= min_frustration)
        for item in qa:
            conds.append(cast(CallRow.qa_results, String).like(f'%"{_like_escape(item.strip())}"%', escape="\\"))
        if tag:
            conds.append(exists().where(
                CallNoteRow.call_id == CallRow.id,
                cast(CallNoteRow.tags, String).like(f'%"{_like_escape(tag.strip())}"%', escape="\\")))
        if agent_id is not None:
            mine = CallRow.agent_id == agent_id
            conds.append(or_(mine, CallRow.id.in_(list(agent_calls))) if agent_calls else mine)
        with Session(self.engine) as s:
            total = s.scalar(select(func.count()).select_from(CallRow).where(*conds)) or 0
            rows = s.scalars(
                select(CallRow).where(*conds).order_by(CallRow.start.desc(), CallRow.id).limit(limit).offset(offset)
            )
            return [_call_dict(r, with_turns=False) for r in rows], total

    def export(
        self, since: datetime, until: datetime, *, agent_id: str | None = None, agent_calls: Collection[str] = (),
        batch: int = 500,
    ) -> Iterator[dict[str, Any]]:
        """Every call that started in ``[since, until)``, oldest first, with its turns, scorecard and notes
        (``agent_id``: only that agent's calls, as in :meth:`search`). Read in batches: a year of calls streams
        in constant memory."""
        conds: list[Any] = [CallRow.start >= _utc(since), CallRow.start < _utc(until)]
        if agent_id is not None:
            mine = CallRow.agent_id == agent_id
            conds.append(or_(mine, CallRow.id.in_(list(agent_calls))) if agent_calls else mine)
        after: tuple[datetime, str] | None = None
        while True:
            with Session(self.engine) as s:
                query = select(CallRow).where(*conds)
                if after is not None:
                    query = query.where(or_(CallRow.start > after[0],
                                            (CallRow.start == after[0]) & (CallRow.id > after[1])))
                rows = list(s.scalars(query.order_by(CallRow.start, CallRow.id).limit(batch)
                                      .options(selectinload(CallRow.turns))))
                if not rows:
                    return
                notes: dict[str, list[dict[str, Any]]] = {}
                for note in s.scalars(select(CallNoteRow).where(CallNoteRow.call_id.in_([r.id for r in rows]))
                                      .order_by(CallNoteRow.at)):
                    notes.setdefault(note.call_id, []).append(_note_dict(note))
                for row in rows:
                    out = _call_dict(row, with_turns=True)
                    out["scorecard"] = row.scorecard
                    out["notes"] = notes.get(row.id, [])
                    yield out
                after = (rows[-1].start, rows[-1].id)

    def stats(self, since: datetime, until: datetime) -> dict[str, Any]:
        """Figures of the calls that started in ``[since, until)`` for the dashboard's plots.

        ``calls_per_hour`` and ``frustration_by_hour`` (mean and max of each call's highest score) per UTC hour,
        ``outcomes`` counted (``in_progress`` for calls not ended), ``latency_ms`` of the bot's replies: p50, p95
        and a histogram whose buckets hold the replies above the previous ``le`` up to ``le`` (null: above all).
        """
        since, until = _utc(since), _utc(until)
        in_range = (CallRow.start >= since, CallRow.start < until)
        with Session(self.engine) as s:
            calls = s.execute(select(CallRow.start, CallRow.outcome, CallRow.frustration_max).where(*in_range)).all()
            query = (
                select(TurnRow.latency_ms)
                .join(CallRow, CallRow.id == TurnRow.call_id)
                .where(*in_range, TurnRow.speaker == "bot", TurnRow.latency_ms.is_not(None))
            )
            latencies = sorted(v for v in s.scalars(query) if v is not None)
        per_hour: Counter[datetime] = Counter()
        frustration: dict[datetime, list[float]] = {}
        for start, _outcome, fmax in calls:
            hour = _utc(start).replace(minute=0, second=0, microsecond=0)
            per_hour[hour] += 1
            if fmax is not None:
                frustration.setdefault(hour, []).append(fmax)
        hours = _hours(since, until, per_hour)
        histogram = []
        lower = float("-inf")
        for le in (*LATENCY_BUCKETS_MS, None):
            upper = float("inf") if le is None else float(le)
            histogram.append({"le": le, "n": sum(1 for v in latencies if lower < v <= upper)})
            lower = upper
        return {
            "since": _iso(since),
            "until": _iso(until),
            "calls": len(calls),
            "calls_per_hour": [{"hour": _iso(h), "calls": per_hour.get(h, 0)} for h in hours],
            "outcomes": dict(Counter(o or "in_progress" for _s, o, _f in calls)),
            "latency_ms": {
                "n": len(latencies),
                "p50": _percentile(latencies, 50),
                "p95": _percentile(latencies, 95),
                "histogram": histogram,
            },
            "frustration_by_hour": [
                {"hour": _iso(h), "mean": round(sum(v) / len(v), 3), "max": round(max(v), 3)}
                for h in hours
                if (v := frustration.get(h))
            ],
        }

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued (retrying for at most ``timeout`` seconds), then stop the writer thread."""
        self._giving_up_at = time.monotonic() + timeout
        self._writes.put(None)
        self._worker.join(timeout + MAX_RETRY_DELAY_S + 1)


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig) if orig is not None else str(exc).splitlines()[0]


def _summarise_turn(s: Session, call_id: str, intents: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    """Keep the call row's intent names and highest frustration up to date with a caller turn."""
    names = [i["name"] for i in intents
             if isinstance(i, dict) and isinstance(i.get("name"), str) and i["name"] not in DIALOGUE_ACTS]
    signals = extra.get("signals")
    score = signals.get("frustration") if isinstance(signals, dict) else None
    if not names and not isinstance(score, (int, float)):
        return
    call = s.get(CallRow, call_id)
    if call is None:
        return
    known = list(call.intents or [])
    new = [n for n in dict.fromkeys(names) if n not in known]
    if new:
        call.intents = known + new  # a new list: SQLAlchemy does not see changes inside a JSON value
        s.add_all(CallIntentRow(call_id=call_id, intent=name[:64], start=call.start, outcome=call.outcome,
                                agent_id=call.agent_id) for name in new)
    if isinstance(score, (int, float)) and (call.frustration_max is None or score > call.frustration_max):
        call.frustration_max = round(float(score), 4)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _hours(since: datetime, until: datetime, seen: Counter[datetime]) -> list[datetime]:
    """Every hour from ``since`` to ``until`` (so plots show empty hours), or only those with calls if too many."""
    first = since.replace(minute=0, second=0, microsecond=0)
    span = int((until - first).total_seconds() // 3600) + 1
    if span > MAX_STATS_HOURS:
        return sorted(seen)
    return [h for i in range(span) if (h := first + timedelta(hours=i)) < until]


def _percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil(n * p / 100)
    return round(float(sorted_values[int(rank) - 1]), 1)


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
        "intents": list(row.intents or []),
        "frustration_max": row.frustration_max,
        "agent_id": row.agent_id,
        "customer_id": row.customer_id,
        "taken_over_by": row.taken_over_by,
        "taken_over_at": _iso(row.taken_over_at),
        "duration_s": round((_utc(row.end) - _utc(row.start)).total_seconds(), 1) if row.end and row.start else None,
        "qa_failed": list((row.scorecard or {}).get("failed") or []),
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


def _recording_dict(row: RecordingRow | None) -> dict[str, Any]:
    """What the call record says of its recording: whether there is one to play, its length, whether declined."""
    return {
        "available": bool(row is not None and row.path and row.consent in PLAYABLE),
        "duration_s": row.duration_s if row is not None and row.path else None,
        "declined": bool(row is not None and row.consent == "declined"),
        # Cut short by the death of the process that recorded it: the file ends where the process died.
        "interrupted": bool(row is not None and row.path and row.consent == "interrupted"),
        # When the recording began: second 0 of the file (the dashboard links evidence times into it).
        "start": _iso(row.started_at) if row is not None and row.path else None,
    }


def _note_dict(row: CallNoteRow) -> dict[str, Any]:
    return {"id": row.id, "at": _iso(row.at), "username": row.username, "note": row.note, "tags": list(row.tags or [])}


def _handed_over(s: Session, call_id: str) -> bool | None:
    """The call went to the agent queue (a transfer record exists); None (unknown) when it did not: the turns'
    traces still tell a hand-off that no queue took."""
    from voicebot.storage.transfers import TransferRow

    return True if s.scalar(select(TransferRow.id).where(TransferRow.call_id == call_id).limit(1)) else None
