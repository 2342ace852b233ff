"""The hand-off tables (beside the call records, same database): how each hand-off to the agent queue ended
(``voicebot_transfers``), the bridged turns of older versions (``voicebot_transfer_turns``, still read) and the
voice messages callers left (``voicebot_voicemails``). Declared here, in storage, so the one table registry
(:mod:`voicebot.storage.schema`) knows them without importing the transfer service; :mod:`voicebot.transfer.store`
reads and writes them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from voicebot.storage.models import ERASE_BY_NUMBER, ERASE_WITH_CALL, Base


class TransferRow(Base):
    """One hand-off of a call to the agent queue and how it ended."""

    __tablename__ = "voicebot_transfers"
    # Covers the analytics' transfer figures per bucket and per agent (voicebot.qa.analytics).
    __table_args__ = (Index("ix_voicebot_transfers_at_figures", "at", "agent_id", "queue", "wait_s", "talk_s",
                            "outcome"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    wait_s: Mapped[float] = mapped_column(Float)
    talk_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    callback_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    voicemail_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TransferTurnRow(Base):
    """One utterance of the caller or the agent while they were bridged."""

    __tablename__ = "voicebot_transfer_turns"
    __table_args__ = {"info": {ERASE_WITH_CALL: True}}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    speaker: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class VoicemailRow(Base):
    """A message a caller left when no agent could take the call: WAV audio, transcript, hand-off packet."""

    __tablename__ = "voicebot_voicemails"
    __table_args__ = {"info": {ERASE_WITH_CALL: True, ERASE_BY_NUMBER: "caller"}}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), index=True)
    queue: Mapped[str] = mapped_column(String(64))
    caller: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str] = mapped_column(String(32))
    seconds: Mapped[float] = mapped_column(Float)
    transcript: Mapped[str] = mapped_column(Text)
    wav: Mapped[bytes] = mapped_column(LargeBinary)
    handoff: Mapped[dict] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="new")
