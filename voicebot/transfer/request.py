"""The queue request of a hand-off: what the agent queue is told about a caller the dialog engine hands over
(:class:`telephony.queue.request.QueueRequest`), computed here so the queue never reads dialog keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from telephony.queue.request import NO_WHISPER, QueueRequest

# Why the bot handed over, in the fewest words an agent needs (frustration is said on its own).
WHISPER_REASONS = {
    "caller_request": "Asked for a person.",
    "not_understood": "The bot did not understand.",
    "slot_not_understood": "The bot did not get the details.",
    "verification_failed": "Verification failed.",
    "action_error": "A system error.",
}
_ASKS_FOR_A_PERSON = re.compile(r"\b(agent|human|person|operator)\b")
# Fields of the dialog engine's packet; a packet with none of them (not from the engine) is whispered by its summary.
_STRUCTURED = ("customer", "intents_pending", "intents_done", "frustration", "reason")


def queue_request_from_packet(packet: Mapping[str, Any] | None) -> QueueRequest:
    """The queue request for the dialog engine's hand-off ``packet`` (``dialogs.manager.handoff``); the one
    place that reads the packet. Tolerates missing or malformed fields."""
    p: Mapping[str, Any] = packet or {}
    given = p.get("customer")
    customer: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    name = str(customer.get("name") or "").strip()
    intents: list[str] = []
    for task in [*(p.get("intents_pending") or []), *(p.get("intents_done") or [])]:
        intent = str(task.get("intent") or "").strip() if isinstance(task, Mapping) else ""
        if intent:
            intents.append(intent)
    frustration = p.get("frustration")
    level = frustration.get("level") if isinstance(frustration, Mapping) else None
    priority = p.get("priority", 0)
    request = QueueRequest(
        queue=_text(p.get("queue")),
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else 0,
        caller=_text(p.get("caller_id")),
        summary=_text(p.get("summary")),
        customer_name=name or None,
        verified=bool(customer.get("verified")),
        intents=tuple(intents),
        frustration=str(level) if level else None,
        reason=_text(p.get("reason")),
        details=p,
    )
    if not any(k in p for k in _STRUCTURED):
        return replace(request, whisper=str(p.get("summary") or NO_WHISPER))
    return replace(request, whisper=whisper_text(request))


def whisper_text(request: QueueRequest) -> str:
    """What the agent hears before the bridge: who (name, verified or not), up to two requests, the
    frustration level unless calm, and why the bot handed over if there is no request - e.g. "Jane Doe,
    verified. Cancel subscription, billing question. Frustrated." or "Caller not identified. Asked for a
    person." The agent page shows the whole hand-off."""
    if request.customer_name:
        parts = [f"{request.customer_name}, {'verified' if request.verified else 'not verified'}."]
    else:
        parts = ["Caller not identified."]
    requests: list[str] = []
    for intent in request.intents:
        words = intent.replace("_", " ").strip()
        # "speak to agent" is the hand-off itself, not a request the agent must deal with.
        if words and words not in requests and not _ASKS_FOR_A_PERSON.search(words):
            requests.append(words)
    if requests:
        parts.append(", ".join(requests[:2]).capitalize() + ".")
    level = request.frustration or "calm"
    if level != "calm":
        parts.append(level.capitalize() + ".")
    # Every word costs the caller waiting time: why the bot handed over is said only without a request.
    reason = WHISPER_REASONS.get(request.reason or "")
    if reason and not requests:
        parts.append(reason)
    return " ".join(parts)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
