"""The records of hand-offs to the agent queue, beside the call records (same database): how each hand-off
ended (``voicebot_transfers``), the bridged turns of older versions (``voicebot_transfer_turns``, still read)
and the voice messages callers left (``voicebot_voicemails``)."""

from __future__ import annotations

import io
import json
import wave
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from audio.pcm import SAMPLE_RATE, SAMPLE_WIDTH
from telephony.queue.live import TransferResult
from voicebot.redaction import Redactor
from voicebot.storage.models import CallRow, TurnRow
from voicebot.storage.transfers import TransferRow, TransferTurnRow, VoicemailRow

# What a queue outcome makes of the call record's outcome (None: keep the bot's "handoff").
CALL_OUTCOME = {"abandoned": "abandoned", "callback": "callback", "timeout": "no_agent", "no_agents": "no_agent",
                "failed": "no_agent"}


class TransferStore:
    """Hand-off rows beside the call records (same database)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.redactor = Redactor.default()  # card numbers ... never stored (the service sets privacy: from config)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def add(self, result: TransferResult, turns: Sequence[tuple[str, str, datetime, datetime]] = (), *,
            correct_call: bool = True) -> None:
        """Record how a hand-off ended and what caller and agent said (``(speaker, text, start, end)``; none
        when the turns went into the call record), and with ``correct_call`` set the call record's outcome
        and end time for it (without: whoever holds the record closes it)."""
        now = datetime.now(UTC)
        with self._sessions.begin() as s:
            for speaker, text, start, end in sorted(turns, key=lambda t: t[2]):
                s.add(TransferTurnRow(call_id=result.call_id, speaker=speaker, text=self.redactor.text(text),
                                      start=start, end=end))
            for lost in result.agents_lost:  # each agent whose side dropped before the hand-off ended
                s.add(TransferRow(call_id=result.call_id, queue=result.queue, agent_id=lost.agent_id,
                                  outcome="agent_lost", wait_s=0.0, talk_s=lost.talk_s, at=now))
            s.add(TransferRow(call_id=result.call_id, queue=result.queue, agent_id=result.agent_id,
                              outcome=result.outcome, wait_s=round(result.wait_s, 2), talk_s=result.talk_s,
                              callback_id=result.callback_id, voicemail_s=result.voicemail_s, at=now))
            if not correct_call:
                return
            values: dict[str, Any] = {"end": now}
            if CALL_OUTCOME.get(result.outcome):
                values["outcome"] = CALL_OUTCOME[result.outcome]
            s.execute(update(CallRow).where(CallRow.id == result.call_id).values(**values))

    def add_voicemail(self, *, call_id: str, queue: str, caller: str | None, reason: str, audio: bytes,
                      transcript: str, handoff: Mapping[str, object]) -> int:
        """Keep a voice message (16 kHz PCM, stored as WAV); returns its id."""
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(SAMPLE_WIDTH)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(audio)
        transcript, handoff = self.redactor.text(transcript), self.redactor.value(dict(handoff))
        with self._sessions.begin() as s:
            row = VoicemailRow(call_id=call_id, queue=queue, caller=caller, reason=reason,
                               seconds=round(len(audio) / SAMPLE_WIDTH / SAMPLE_RATE, 2), transcript=transcript,
                               wav=buf.getvalue(), handoff=json.loads(json.dumps(handoff, default=str)),
                               at=datetime.now(UTC), status="new")
            s.add(row)
            s.flush()
            return row.id

    def voicemails(self, status: str | None = "new") -> list[dict[str, Any]]:
        """Voice messages, newest first, without their audio."""
        with self._sessions() as s:
            q = select(VoicemailRow).order_by(VoicemailRow.id.desc())
            if status is not None:
                q = q.where(VoicemailRow.status == status)
            return [{"id": r.id, "call_id": r.call_id, "queue": r.queue, "caller": r.caller, "reason": r.reason,
                     "seconds": r.seconds, "transcript": r.transcript, "at": _iso(r.at), "status": r.status,
                     "summary": (r.handoff or {}).get("summary")} for r in s.scalars(q)]

    def voicemail_wav(self, voicemail_id: int) -> bytes | None:
        with self._sessions() as s:
            row = s.get(VoicemailRow, voicemail_id)
            return None if row is None else row.wav

    def set_voicemail_status(self, voicemail_id: int, status: str) -> bool:
        with self._sessions.begin() as s:
            row = s.get(VoicemailRow, voicemail_id)
            if row is None:
                return False
            row.status = status
            return True

    def call_ids_of_agent(self, agent_id: str) -> set[str]:
        """The calls recorded as handed to ``agent_id`` (an agent may see these)."""
        with self._sessions() as s:
            return set(s.scalars(select(TransferRow.call_id).where(TransferRow.agent_id == agent_id)))

    def of_call(self, call_id: str) -> dict[str, Any] | None:
        """The last hand-off of a call as JSON-ready data, or None."""
        with self._sessions() as s:
            row = s.scalars(select(TransferRow).where(TransferRow.call_id == call_id)
                            .order_by(TransferRow.id.desc())).first()
            if row is None:
                return None
            old = s.scalars(select(TransferTurnRow).where(TransferTurnRow.call_id == call_id)
                            .order_by(TransferTurnRow.start, TransferTurnRow.id))
            transcript: list[dict[str, str | None]] = [
                {"speaker": t.speaker, "text": t.text, "start": _iso(t.start), "end": _iso(t.end)} for t in old]
            # Since the bridged turns go into the call record: those of its turns marked "bridged".
            bridged = s.scalars(select(TurnRow).where(TurnRow.call_id == call_id, TurnRow.speaker != "bot")
                                .order_by(TurnRow.start, TurnRow.id))
            transcript += [{"speaker": t.speaker, "text": t.text, "start": _iso(t.start),
                            "end": _iso(t.end) if t.end is not None else None}
                           for t in bridged if (t.extra or {}).get("kind") == "bridged"]
            lost = s.scalars(select(TransferRow.agent_id).where(TransferRow.call_id == call_id,
                                                               TransferRow.outcome == "agent_lost")
                             .order_by(TransferRow.id))
            return {"queue": row.queue, "agent_id": row.agent_id, "outcome": row.outcome, "wait_s": row.wait_s,
                    "talk_s": row.talk_s, "callback_id": row.callback_id, "voicemail_s": row.voicemail_s,
                    "agents_lost": list(lost), "transcript": transcript}


def _iso(dt: datetime) -> str:
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()
