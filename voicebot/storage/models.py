"""Tables of call records: one row per call, one per spoken turn; and the declarative Base of every table of
the application (call records, users, hand-offs), so they share one MetaData.

They live in the same database as the customer data (SQLite by default) and survive a restart; the
migrations of :mod:`voicebot.storage.schema` create them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """The application's tables (the dialogs and telephony libraries keep their own: see storage.schema)."""


# Table.info key of a table whose rows (by ``call_id``) quote or identify the caller of a call: the right to
# erasure and the retention purge delete them with the call's personal content (storage.retention).
ERASE_WITH_CALL = "erase_with_call"
# Table.info key naming the column that holds a caller's number in such a table: the right to erasure also
# deletes the rows left from the person's numbers on calls that are not theirs (a voice message, say).
ERASE_BY_NUMBER = "erase_by_number"


class CallRow(Base):
    __tablename__ = "voicebot_calls"
    # Covers the analytics' per-bucket figures (voicebot.qa.analytics): a range of starts is read from the index
    # alone, never from the rows with their JSON.
    __table_args__ = (Index("ix_voicebot_calls_start_figures", "start", "outcome", "agent_id", "end",
                            "frustration_max"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    caller_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    dialled: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the number the caller dialled
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Kept up to date as turns are stored, so history search needs no scan of the turns:
    intents: Mapped[list | None] = mapped_column(JSON, nullable=True)  # names, in order of first mention
    frustration_max: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # who took the hand-off
    # The customer the bot identified on this call (erasure and right of access find the call by it).
    customer_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    # The cluster node carrying the call (cluster.node_id; None on a single node): survivors close a lost node's.
    node_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # A supervisor who took the call over from the bot (barge-in, voicebot.server.listen), and when.
    taken_over_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    taken_over_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The automatic quality review made when the record closed (voicebot.qa.scorecard), and the names of its
    # items as "name=result" strings apart, so history search filters on them without reading every scorecard.
    scorecard: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    qa_results: Mapped[list | None] = mapped_column(JSON, nullable=True)
    turns: Mapped[list[TurnRow]] = relationship(
        back_populates="call", order_by="TurnRow.seq", cascade="all, delete-orphan"
    )


class CallIntentRow(Base):
    """One intent a call was about (a row per call and intent, with the call's start, and its outcome and agent
    copied when the call closes): what the analytics count per intent from one covering index, where the call
    row's JSON list of intents would need a scan."""

    __tablename__ = "voicebot_call_intents"
    __table_args__ = (Index("ix_voicebot_call_intents_start_intent", "start", "intent", "outcome", "agent_id"),)

    call_id: Mapped[str] = mapped_column(ForeignKey("voicebot_calls.id", ondelete="CASCADE"), primary_key=True)
    intent: Mapped[str] = mapped_column(String(64), primary_key=True)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CallNoteRow(Base):
    """A reviewer's note and tags on a call (its scorecard): who wrote it and when. It may quote the caller."""

    __tablename__ = "voicebot_call_notes"
    __table_args__ = {"info": {ERASE_WITH_CALL: True}}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("voicebot_calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    username: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list] = mapped_column(JSON, default=list)


class RecordingRow(Base):
    """The recording of a call (voicebot.recording): its file, size and length, and the caller's consent. A
    declined recording keeps its row (consent ``declined``, when) and loses its file. The retention purge and the
    right to erasure delete the row with its file (storage.retention)."""

    __tablename__ = "voicebot_recordings"
    __table_args__ = {"info": {ERASE_WITH_CALL: True}}

    call_id: Mapped[str] = mapped_column(ForeignKey("voicebot_calls.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)  # None once declined or deleted
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    # recording (in progress) | recorded | declined | interrupted (its process died; the file ends there) |
    # unannounced (its process died before the caller heard the announcement: the file was deleted)
    consent: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    declined_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TurnRow(Base):
    __tablename__ = "voicebot_call_turns"
    __table_args__ = {"info": {ERASE_WITH_CALL: True}}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("voicebot_calls.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    intents: Mapped[list] = mapped_column(JSON, default=list)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Per-stage timings and flags (interrupted, partial): open-ended, for benchmarks and supervisors.
    extra: Mapped[dict] = mapped_column(JSON, default=dict)
    call: Mapped[CallRow] = relationship(back_populates="turns")


class AlertRow(Base):
    """A supervisor alert on a call (a frustrated caller, a long wait) and what the supervisors did about it
    (voicebot.alerts). Its message may name the caller."""

    __tablename__ = "voicebot_alerts"
    __table_args__ = (Index("ix_voicebot_alerts_open", "resolved_at", "raised_at"),
                      {"info": {ERASE_WITH_CALL: True}})

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    call_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    assigned_to: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    assigned_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
