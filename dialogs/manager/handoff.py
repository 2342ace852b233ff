"""The hand-off packet: everything a human agent needs so the caller never repeats themselves."""

from __future__ import annotations

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


def frustration_level(score: float, calm: float, handoff: float) -> str:
    if score >= handoff:
        return "frustrated"
    if score >= calm:
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


def build_handoff(session: DialogSession, *, reason: str) -> dict[str, Any]:
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
    level = frustration_level(st.frustration_max, opts.frustration_calm, opts.frustration_handoff)
    summary = who + ". " + ("; ".join(parts).capitalize() if parts else "No request stated yet") + "."
    if level != "calm":
        summary += f" {level.capitalize()}."
    if reason in REASONS and reason not in ("human_only",):
        summary += f" Handed over because the {REASONS[reason]}." if reason.startswith(("not_", "slot")) else (
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
    return {
        "summary": summary,
        "reason": reason,
        "reason_text": REASONS.get(reason, reason.replace("_", " ")),
        "queue": queue,
        "priority": priority,
        "channel": session.channel,
        "call_id": session.call_id,
        "caller_id": session.caller_id,
        "contact_id": session.contact_id,
        "customer": (
            {"id": st.customer_id, "name": st.customer_name, "verified": st.verified, "verified_by": st.verified_by}
            if st.customer_id is not None
            else None
        ),
        "intents_done": [t.as_dict() for t in done],
        "intents_pending": [t.as_dict() for t in pending],
        "slots": slots,
        "transcript": [{"speaker": e["speaker"], "text": e["text"], "at": e["at"]} for e in session.transcript],
        "frustration": {
            "last": round(st.frustration_last, 3),
            "max": round(st.frustration_max, 3),
            "level": level,
            "explanation": st.frustration_explanation,
        },
    }
