"""The queue request of a hand-off: what the agent queue is told about a caller the dialog engine hands over
(:class:`telephony.queue.request.QueueRequest`), computed here so the queue never reads dialog keys."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from telephony.queue.request import QueueRequest

if TYPE_CHECKING:
    from dialogs.manager.handoff import HandoffPacket

# Why the bot handed over, in the fewest words an agent needs (frustration is said on its own).
WHISPER_REASONS = {
    "caller_request": "Asked for a person.",
    "not_understood": "The bot did not understand.",
    "slot_not_understood": "The bot did not get the details.",
    "verification_failed": "Verification failed.",
    "action_error": "A system error.",
}
_ASKS_FOR_A_PERSON = re.compile(r"\b(agent|human|person|operator)\b")


def queue_request_from_packet(packet: HandoffPacket | None) -> QueueRequest:
    """The queue request for the dialog engine's hand-off ``packet``; ``details`` is the packet's JSON (what
    the agent page, voice messages and callback requests show). None: an unnamed caller to the first queue."""
    if packet is None:
        return QueueRequest()
    customer = packet.customer
    name = (customer.name or "").strip() if customer is not None else ""
    intents = [t.intent.strip() for t in (*packet.intents_pending, *packet.intents_done) if t.intent.strip()]
    request = QueueRequest(
        queue=packet.queue or None,
        priority=packet.priority,
        caller=packet.caller_id or None,
        summary=packet.summary or None,
        customer_name=name or None,
        verified=customer is not None and customer.verified,
        intents=tuple(intents),
        frustration=packet.frustration.level or None,
        reason=packet.reason or None,
        details=packet.to_dict(),
    )
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
