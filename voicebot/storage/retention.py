"""Personal data in call records: right of access, right to erasure and the retention purge.

The dialog database's own rows (customers, contacts) are handled by :mod:`dialogs.privacy`; this module does the
same for what the voice application stores beside them: call records and their turns, the turns of bridged
calls, voice messages and callback requests. A call belongs to a customer when the bot identified them on it
(``customer_id``) or when it came from one of their numbers.

Erasure keeps the anonymous shell of a call (channel, times, outcome, intents, highest frustration, agent) so
statistics stay right, and removes what identifies or quotes the person: caller number, every turn (with its
intents' slot values and its trace), the transcript of the bridged conversation, voice messages (also those
left from the person's number) and the number and hand-off packet of callback requests. Which tables hold such
content, this module learns from the registry (:mod:`voicebot.storage.schema`): each declares
``ERASE_WITH_CALL`` (and, if it keeps a number, ``ERASE_BY_NUMBER``) in its ``Table.info``.

Call recordings (:mod:`voicebot.recording`) go with the rest of a call's content, row and file; the export gives
their file paths (the audio stays in its file). ``recording.retention_days`` may delete them sooner
(:func:`purge_recordings`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from voicebot.qa.scorecard import without_quotes
from voicebot.storage.calls import _call_dict
from voicebot.storage.models import ERASE_BY_NUMBER, ERASE_WITH_CALL, CallRow, RecordingRow, TurnRow
from voicebot.storage.schema import declared_tables


def _call_content_tables() -> list[Table]:
    """The tables whose rows (by ``call_id``) quote or identify a caller: those that declare ERASE_WITH_CALL."""
    return [t for t in declared_tables().values() if t.info.get(ERASE_WITH_CALL)]


@dataclass(frozen=True)
class CallErasure:
    """What :func:`erase_calls` did, in numbers."""

    calls: int
    voicemails: int
    callbacks: int
    recordings: int = 0  # recording files deleted


def _recording_files(s: Session, ids: list[str]) -> list[str]:
    """The files of the recordings of calls ``ids`` (deleted with the rows: see :func:`_delete_files`)."""
    if not ids:
        return []
    return [p for p in s.scalars(select(RecordingRow.path).where(RecordingRow.call_id.in_(ids))) if p]


def _delete_files(paths: Iterable[str]) -> int:
    """Delete recording files (after their rows are gone); how many existed."""
    gone = 0
    for path in paths:
        try:
            Path(path).unlink()
            gone += 1
        except FileNotFoundError:
            pass
    return gone


def _calls_of(customer_id: int, phones: Iterable[str]) -> Any:
    numbers = [p for p in phones if p]
    mine = CallRow.customer_id == customer_id
    return or_(mine, CallRow.caller_id.in_(numbers)) if numbers else mine


def export_calls(engine: Engine, customer_id: int, phones: Iterable[str]) -> list[dict[str, Any]]:
    """Every call record of a customer, with its turns and its recording (``recording``: the file's path, size,
    length and consent; the audio itself stays in its file), for a right-of-access export."""
    with Session(engine) as s:
        ids = list(s.scalars(select(CallRow.id).where(_calls_of(customer_id, phones)).order_by(CallRow.start)))
    out = []
    for call_id in ids:
        with Session(engine) as s:
            row = s.get(CallRow, call_id)
            if row is not None:
                call = _call_dict(row, with_turns=True)
                rec = s.get(RecordingRow, call_id)
                call["recording"] = None if rec is None else {
                    "path": rec.path, "bytes": rec.bytes, "duration_s": rec.duration_s, "consent": rec.consent,
                    "declined_at": rec.declined_at.isoformat() if rec.declined_at else None}
                out.append(call)
    return out


def _erase(s: Session, ids: list[str], numbers: Sequence[str] = ()) -> dict[str, int]:
    """Delete the call content of ``ids`` (and rows left from ``numbers``) and clear the calls' caller; the rows
    deleted per table. Does not commit."""
    deleted: dict[str, int] = {}
    for table in _call_content_tables():  # the turns, and what other packages keep of the call (hand-offs)
        whose: ColumnElement[bool] = table.c.call_id.in_(ids)
        column = table.info.get(ERASE_BY_NUMBER)
        if column and numbers:
            whose = or_(whose, table.c[column].in_(list(numbers)))
        deleted[table.name] = int(s.execute(delete(table).where(whose)).rowcount or 0)  # type: ignore[attr-defined]
    if ids:
        s.execute(update(CallRow).where(CallRow.id.in_(ids)).values(caller_id=None, customer_id=None))
        for row in s.scalars(select(CallRow).where(CallRow.id.in_(ids), CallRow.scorecard.is_not(None))):
            if row.scorecard:  # its evidence quotes the turns just erased
                row.scorecard = without_quotes(row.scorecard)
    return deleted


def erase_calls(engine: Engine, customer_id: int, phones: Iterable[str]) -> CallErasure:
    """Erase the personal content of a customer's call records, and the voice messages and callback requests of
    those calls or from their numbers."""
    from telephony.queue.store import erase_callbacks

    numbers = [p for p in phones if p]
    with Session(engine) as s, s.begin():
        ids = list(s.scalars(select(CallRow.id).where(_calls_of(customer_id, numbers))))
        callbacks = erase_callbacks(s, ids, numbers)
        files = _recording_files(s, ids)
        deleted = _erase(s, ids, numbers)
    return CallErasure(len(ids), deleted.get("voicebot_voicemails", 0), callbacks, _delete_files(files))


def purge_calls(engine: Engine, before: datetime) -> int:
    """Erase the personal content of calls that started before ``before`` (still holding any); returns how many.
    Calls still in progress are never touched."""
    with Session(engine) as s, s.begin():
        has_turns = select(TurnRow.call_id).where(TurnRow.call_id == CallRow.id).exists()
        ids = list(s.scalars(select(CallRow.id).where(
            CallRow.start < before, CallRow.end.is_not(None),
            or_(CallRow.caller_id.is_not(None), CallRow.customer_id.is_not(None), has_turns))))
        files = _recording_files(s, ids)
        _erase(s, ids)
    _delete_files(files)
    return len(ids)


def purge_recordings(engine: Engine, before: datetime) -> int:
    """Delete the recordings (rows and files) of calls that ended and started before ``before``; how many."""
    with Session(engine) as s, s.begin():
        ids = list(s.scalars(select(RecordingRow.call_id).join(CallRow, CallRow.id == RecordingRow.call_id).where(
            RecordingRow.started_at < before, CallRow.end.is_not(None))))
        files = _recording_files(s, ids)
        if ids:
            s.execute(delete(RecordingRow).where(RecordingRow.call_id.in_(ids)))
    _delete_files(files)
    return len(ids)


def purge_all(database: Any, retention_days: int, recording_retention_days: int | None = None) -> tuple[int, int]:
    """The retention purge of a :class:`dialogs.db.Database`: contacts (their personal fields) and call records
    (with their recordings) older than ``retention_days``, and recordings older than ``recording_retention_days``
    (if given); returns ``(contacts, calls)`` purged."""
    from dialogs.db.times import utc_now
    from dialogs.privacy import purge_contacts

    now = utc_now()
    with database.session() as session:
        contacts = purge_contacts(session, now, retention_days, actor="retention")
    if recording_retention_days is not None:
        purge_recordings(database.engine, datetime.now(UTC) - timedelta(days=recording_retention_days))
    calls = purge_calls(database.engine, datetime.now(UTC) - timedelta(days=retention_days))
    if contacts or calls:
        checkpoint(database.engine)
    return contacts, calls


def checkpoint(engine: Engine) -> None:
    """After an erasure on SQLite in WAL mode: copy the erased pages into the database file and empty the
    write-ahead log, so the erased words do not linger in it."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
