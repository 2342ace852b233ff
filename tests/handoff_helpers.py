"""Hand-off packets as the dialog engine makes them (``dialogs.manager.handoff``), for tests of the agent queue."""

from __future__ import annotations

from typing import Any

from dialogs.manager.handoff import REASONS, HandoffCustomer, HandoffFrustration, HandoffIntent, HandoffPacket


def customer(name: str | None, verified: bool, *, id: int = 7, verified_by: str | None = None) -> HandoffCustomer:
    return HandoffCustomer(id=id, name=name, verified=verified, verified_by=verified_by)


def intent(name: str, status: str = "active") -> HandoffIntent:
    return HandoffIntent(intent=name, status=status, outcome=None, slots={})


def frustration(level: str = "calm", score: float = 0.0) -> HandoffFrustration:
    return HandoffFrustration(last=score, max=score, level=level, explanation=None)


def handoff_packet(summary: str, **fields: Any) -> HandoffPacket:
    """A packet with ``summary``; other fields as given, else those of an unidentified calm caller who asked
    for a person, to the ``general`` queue."""
    reason = fields.pop("reason", "caller_request")
    values: dict[str, Any] = {
        "summary": summary, "reason": reason, "reason_text": REASONS.get(reason, reason), "queue": "general",
        "priority": 0, "channel": "sip", "call_id": None, "caller_id": None, "contact_id": None, "customer": None,
        "intents_done": (), "intents_pending": (), "slots": {}, "transcript": (), "frustration": frustration(),
    }
    return HandoffPacket(**{**values, **fields})
