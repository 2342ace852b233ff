"""The wrap-up form of the agent page: prefilled by the bot from the call's running summary,
edited by the agent, saved into the contact history (the summary the bot's memory reads next time), audited."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from dialogs.db.audit import record_change
from dialogs.db.models import Contact
from dialogs.manager.handoff import HandoffPacket
from voicebot.assist.summary import RunningSummary

DISPOSITIONS = ("resolved", "follow-up", "escalated")
MAX_SUMMARY = 1000


class WrapUpError(ValueError):
    """A wrap-up the agent sent that cannot be saved (the message says why)."""


@dataclass(frozen=True)
class WrapUp:
    disposition: str
    intents: tuple[str, ...]
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"disposition": self.disposition, "intents": list(self.intents), "summary": self.summary}


def _first_sentence(text: str) -> str:
    parts = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)
    return parts[0] if parts and parts[0] else ""


def prefill(packet: HandoffPacket, summary: RunningSummary) -> WrapUp:
    """The bot's proposal from the call's running summary: ``follow-up`` while the hand-off has pending
    requests and the agent ran no action that did what was asked, else ``resolved``; the requests heard (hand-off and bridged call); the hand-off's first sentence,
    the caller's key sentence to the agent and the actions the agent ran."""
    first = _first_sentence(summary.handoff) or "The caller was handed to an agent."
    informative = [h.text for h in summary.heard if h.intents or h.slots] or [h.text for h in summary.heard]
    said = informative[-1] if informative else ""
    second = f'The caller told the agent: "{said}"' if said else "The agent took the call."
    if not second.endswith((".", "!", "?", '"')):
        second += "."
    text = f"{first} {second}"
    if summary.actions:
        text += " The agent ran: " + "; ".join(summary.actions) + "."
    open_matter = bool(packet.intents_pending) and not summary.actions_done
    return WrapUp("follow-up" if open_matter else "resolved", summary.intents, text[:MAX_SUMMARY])


def parse(body: Mapping[str, Any]) -> WrapUp:
    """The wrap-up in a request body; raises :class:`WrapUpError` with what is wrong."""
    disposition, intents, summary = body.get("disposition"), body.get("intents", []), body.get("summary")
    if disposition not in DISPOSITIONS:
        raise WrapUpError(f'"disposition" must be one of {", ".join(DISPOSITIONS)}')
    if not isinstance(intents, list) or not all(isinstance(i, str) and 0 < len(i) <= 60 for i in intents):
        raise WrapUpError('"intents" must be a list of intent names')
    if not isinstance(summary, str) or not summary.strip() or len(summary) > MAX_SUMMARY:
        raise WrapUpError(f'"summary" must be a text of 1 to {MAX_SUMMARY} characters')
    return WrapUp(str(disposition), tuple(intents), summary.strip())


def save(session: Session, contact_id: int, wrap: WrapUp, actor: str, now: datetime) -> None:
    """Write the agent's wrap-up into contact ``contact_id`` with an audit row: its summary, and its intents in
    the contact's shape (``status`` done when resolved, else pending, so the bot's memory brings up an open
    matter next time; ``outcome`` the disposition). Raises :class:`WrapUpError` for an unknown contact."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise WrapUpError(f"no contact {contact_id} in the customer database")
    before = {"summary": contact.summary, "intents": contact.intents}
    contact.summary = wrap.summary
    status = "done" if wrap.disposition == "resolved" else "pending"
    contact.intents = [{"intent": i, "status": status, "outcome": wrap.disposition, "slots": {}} for i in wrap.intents]
    record_change(session, at=now, actor=actor, entity="contact", entity_id=contact_id, action="wrap_up",
                  customer_id=contact.customer_id, contact_id=contact_id, before=before,
                  after={"summary": contact.summary, "intents": contact.intents})
