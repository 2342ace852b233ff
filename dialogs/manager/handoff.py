"""The hand-off packet: everything a human agent needs so the caller never repeats themselves.

:class:`HandoffPacket` is the typed contract; :meth:`HandoffPacket.to_dict` is its JSON (the call record, the
agent page, the events websocket and the dashboard read that JSON), made only where the packet leaves the
process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dialogs.jsonable import jsonable
from dialogs.manager.state import Task

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession

REASONS = {
    "caller_request": "asked for a person",
    "human_only": "needs a person for this request",
    "not_understood": "the bot did not understand twice in a row",
    "slot_not_understood": "the bot could not get the details it needed",
    "verification_failed": "identity verification failed",
    "frustration": "caller is frustrated",
    "action_error": "a system error stopped the request",
}


@dataclass(frozen=True)
class HandoffCustomer:
    """The customer the caller was identified as (by caller ID or phone number), and whether verified."""

    id: int
    name: str | None
    verified: bool
    verified_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "verified": self.verified, "verified_by": self.verified_by}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HandoffCustomer | None:
        """The customer of :meth:`to_dict`'s JSON; None without an integer ``id``."""
        id_ = data.get("id")
        if not isinstance(id_, int) or isinstance(id_, bool):
            return None
        return cls(id=id_, name=_str_or_none(data.get("name")), verified=data.get("verified") is True,
                   verified_by=_str_or_none(data.get("verified_by")))


@dataclass(frozen=True)
class HandoffIntent:
    """One request of the call: its intent, status (pending, active, done, failed ...), last outcome, slots."""

    intent: str
    status: str
    outcome: str | None
    slots: Mapping[str, Any]  # slot name -> JSON value

    @classmethod
    def of(cls, task: Task) -> HandoffIntent:
        return cls(intent=task.intent, status=task.status, outcome=task.outcome,
                   slots={k: jsonable(v) for k, v in task.slots.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "status": self.status, "outcome": self.outcome, "slots": dict(self.slots)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HandoffIntent:
        slots = data.get("slots")
        return cls(intent=str(data.get("intent") or ""), status=str(data.get("status") or ""),
                   outcome=_str_or_none(data.get("outcome")), slots=dict(slots) if isinstance(slots, Mapping) else {})


@dataclass(frozen=True)
class TranscriptLine:
    """One line of the conversation so far: ``speaker`` caller or bot, the words, ISO time."""

    speaker: str
    text: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "text": self.text, "at": self.at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TranscriptLine:
        return cls(speaker=str(data.get("speaker") or ""), text=str(data.get("text") or ""),
                   at=str(data.get("at") or ""))


@dataclass(frozen=True)
class HandoffFrustration:
    """The caller's frustration: last and highest score (0-1), the level of the highest, and why."""

    last: float
    max: float
    level: str  # calm | annoyed | frustrated
    explanation: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"last": self.last, "max": self.max, "level": self.level, "explanation": self.explanation}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HandoffFrustration:
        return cls(last=_float(data.get("last")), max=_float(data.get("max")), level=str(data.get("level") or "calm"),
                   explanation=_str_or_none(data.get("explanation")))


@dataclass(frozen=True)
class HandoffPacket:
    """What the agent gets with a handed-off caller; ``queue`` and ``priority`` say where the caller waits."""

    summary: str
    reason: str
    reason_text: str
    queue: str
    priority: int
    channel: str
    call_id: str | None
    caller_id: str | None
    contact_id: int | None
    customer: HandoffCustomer | None
    intents_done: tuple[HandoffIntent, ...]
    intents_pending: tuple[HandoffIntent, ...]
    slots: Mapping[str, Any]  # every slot of every request, slot name -> JSON value
    transcript: tuple[TranscriptLine, ...]
    frustration: HandoffFrustration

    def to_dict(self) -> dict[str, Any]:
        """The packet as JSON (the keys and order the call record, agent page and dashboard read)."""
        return {
            "summary": self.summary,
            "reason": self.reason,
            "reason_text": self.reason_text,
            "queue": self.queue,
            "priority": self.priority,
            "channel": self.channel,
            "call_id": self.call_id,
            "caller_id": self.caller_id,
            "contact_id": self.contact_id,
            "customer": self.customer.to_dict() if self.customer is not None else None,
            "intents_done": [t.to_dict() for t in self.intents_done],
            "intents_pending": [t.to_dict() for t in self.intents_pending],
            "slots": dict(self.slots),
            "transcript": [line.to_dict() for line in self.transcript],
            "frustration": self.frustration.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> HandoffPacket:
        """The packet back from :meth:`to_dict`'s JSON (as stored in a call record or sent by another node);
        missing or mistyped fields get empty values, never an exception (old records lack newer fields)."""
        data = data if isinstance(data, Mapping) else {}

        def items(key: str) -> list[Mapping[str, Any]]:
            value = data.get(key)
            return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list | tuple) else []

        customer, slots, frustration = data.get("customer"), data.get("slots"), data.get("frustration")
        reason = str(data.get("reason") or "")
        priority, contact = data.get("priority"), data.get("contact_id")
        return cls(
            summary=str(data.get("summary") or ""),
            reason=reason,
            reason_text=str(data.get("reason_text") or REASONS.get(reason, reason.replace("_", " "))),
            queue=str(data.get("queue") or ""),
            priority=priority if isinstance(priority, int) else 0,
            channel=str(data.get("channel") or ""),
            call_id=_str_or_none(data.get("call_id")),
            caller_id=_str_or_none(data.get("caller_id")),
            contact_id=contact if isinstance(contact, int) and not isinstance(contact, bool) else None,
            customer=HandoffCustomer.from_dict(customer) if isinstance(customer, Mapping) else None,
            intents_done=tuple(HandoffIntent.from_dict(i) for i in items("intents_done")),
            intents_pending=tuple(HandoffIntent.from_dict(i) for i in items("intents_pending")),
            slots=dict(slots) if isinstance(slots, Mapping) else {},
            transcript=tuple(TranscriptLine.from_dict(t) for t in items("transcript")),
            frustration=HandoffFrustration.from_dict(frustration if isinstance(frustration, Mapping) else {}),
        )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def frustration_level(score: float, annoyed: float, frustrated: float) -> str:
    """The level word for a score under the two thresholds (the same rule as ``audio.frustration.level_for``)."""
    if score >= frustrated:
        return "frustrated"
    if score >= annoyed:
        return "annoyed"
    return "calm"


def _describe(session: DialogSession, task: Task) -> str:
    intent = session.domain.intents[task.intent]
    template = intent.summary or intent.description or task.intent.replace("_", " ")
    values = {**{k: jsonable(v) for k, v in task.slots.items()}, **{k: jsonable(v) for k, v in task.data.items()}}
    try:
        text = template.format(**values)
    except (KeyError, IndexError):
        text = intent.description or task.intent.replace("_", " ")
    if task.status == "done" and task.outcome and task.outcome != "ok":
        text += f" ({task.outcome.replace('_', ' ')})"
    elif task.status == "done":
        text += " (done)"
    elif task.status == "cancelled":
        text += " (changed their mind)"
    return text


def build_handoff(session: DialogSession, *, reason: str) -> HandoffPacket:
    """One packet: summary sentence, intents done and pending, slots, identity, transcript, frustration."""
    st = session.state
    opts = session.engine.options
    tasks = [*st.finished, *([st.current] if st.current else []), *st.agenda]
    done = [t for t in st.finished if t.status == "done"]
    pending = [t for t in tasks if t.status not in ("done", "cancelled")]

    who = st.customer_name or (f"caller {session.caller_id}" if session.caller_id else "An unidentified caller")
    if st.customer_name:
        who = f"Caller {who}, " + ("verified" if st.verified else "not verified")
    parts = [_describe(session, t) for t in tasks]
    level = frustration_level(st.frustration_max, opts.annoyed, opts.frustrated)
    summary = who + ". " + ("; ".join(parts).capitalize() if parts else "No request stated yet") + "."
    if level != "calm":
        summary += f" {level.capitalize()}."
    if reason in REASONS and reason not in ("human_only",):
        # REASONS that name the bot read as a clause ("because the bot did not ..."), the others as a phrase.
        summary += f" Handed over because {REASONS[reason]}." if reason.startswith(("not_", "slot")) else (
            f" Handed over: {REASONS[reason]}."
        )

    queue = session.domain.default_queue
    priority = 0
    for t in pending or tasks:
        intent = session.domain.intents[t.intent]
        if intent.queue:
            queue = intent.queue
            priority = intent.priority
            break
    if reason == "frustration" or level == "frustrated":
        priority += session.domain.frustration_priority

    slots: dict[str, Any] = {}
    for t in tasks:
        slots.update({k: jsonable(v) for k, v in t.slots.items()})
    return HandoffPacket(
        summary=summary,
        reason=reason,
        reason_text=REASONS.get(reason, reason.replace("_", " ")),
        queue=queue,
        priority=priority,
        channel=session.channel,
        call_id=session.call_id,
        caller_id=session.caller_id,
        contact_id=session.contact_id,
        customer=(
            HandoffCustomer(id=st.customer_id, name=st.customer_name, verified=st.verified, verified_by=st.verified_by)
            if st.customer_id is not None
            else None
        ),
        intents_done=tuple(HandoffIntent.of(t) for t in done),
        intents_pending=tuple(HandoffIntent.of(t) for t in pending),
        slots=slots,
        transcript=tuple(TranscriptLine(speaker=e["speaker"], text=e["text"], at=e["at"]) for e in session.transcript),
        frustration=HandoffFrustration(
            last=round(st.frustration_last, 3),
            max=round(st.frustration_max, 3),
            level=level,
            explanation=st.frustration_explanation,
        ),
    )
