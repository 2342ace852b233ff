"""The next best action on the agent page: the domain action the caller's request leads to ("Start a return
for order 63950"), chosen from what the caller said (the NLU of the bridged call's caller turns, newest first),
the hand-off's pending requests and the customer's data; and running it as the agent, through the same
action code and transaction rules the bot uses (``dialogs.actions``), audited under the agent's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dialogs.actions import ACTIONS, ActionContext, ActionResult
from dialogs.db.audit import record_change
from dialogs.db.engine import Database
from dialogs.domain.schema import Domain
from dialogs.jsonable import jsonable
from dialogs.manager.handoff import HandoffPacket
from voicebot.assist.card import CustomerCard
from voicebot.assist.summary import RunningSummary

# What the agent's button says for the demo's actions; other actions get their name ("Refund duplicate charge").
LABELS = {
    "lookup_order": "Look up order {order_id}",
    "start_return": "Start a return for order {order_id}",
    "change_address": "Change the address to {address}",
    "reset_password": "Send a password reset e-mail",
    "billing_summary": "Read the billing summary",
    "refund_duplicate_charge": "Refund the duplicate charge",
    "cancel_subscription": "Cancel the subscription",
}
MAX_SLOT = 200  # characters of one slot value the agent may send


class NextActionError(ValueError):
    """An action the agent asked for that cannot run (the message says why)."""


@dataclass(frozen=True)
class NextAction:
    """One proposal: run ``action`` for request ``intent`` with ``slots`` (``missing``: the slots still empty,
    for the agent to fill in); ``because`` says where the request came from."""

    action: str
    intent: str
    label: str
    slots: Mapping[str, str]
    missing: tuple[str, ...]
    because: str

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "intent": self.intent, "label": self.label, "slots": dict(self.slots),
                "missing": list(self.missing), "because": self.because}


@dataclass(frozen=True)
class ActionRun:
    """What running an action as the agent gave: its outcome and the data of its result."""

    action: str
    label: str
    outcome: str
    data: Mapping[str, Any]
    changed: bool

    @property
    def text(self) -> str:
        """One line for the transcript: the label, the outcome and the result's details."""
        shown = {k: v for k, v in self.data.items() if not k.endswith("_spoken") and v not in (None, "", [])}
        details = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in shown.items())
        return f"{self.label}: {self.outcome.replace('_', ' ')}" + (f" ({details})" if details else "")

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "label": self.label, "outcome": self.outcome, "data": jsonable(dict(self.data)),
                "changed": self.changed, "text": self.text}


def action_of(domain: Domain, intent: str) -> tuple[str, tuple[str, ...]] | None:
    """The action that carries out ``intent`` (the last ``action:`` step of its flow, the one that does the
    request) and the slots its flow asks for before it unconditionally; None for a flow without actions."""
    spec = domain.intents.get(intent)
    if spec is None:
        return None
    asked: list[str] = []
    found: tuple[str, tuple[str, ...]] | None = None
    for step in spec.steps:
        if step.ask and not step.when and step.ask not in asked:
            asked.append(step.ask)
        if step.action:
            found = (step.action, tuple(asked))
    return found


def domain_actions(domain: Domain) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every action an agent may run: action name -> (its intent, the slots it needs)."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name in domain.intents:
        found = action_of(domain, name)
        if found is not None:
            out.setdefault(found[0], (name, found[1]))
    return out


def label(action: str, slots: Mapping[str, str]) -> str:
    """The button's words for ``action`` with ``slots`` ("Start a return for order 63950")."""
    template = LABELS.get(action)
    if template is not None:
        try:
            return template.format(**slots)
        except (KeyError, IndexError):
            pass
    return action.replace("_", " ").capitalize()


def _from_customer(slot: str, intent: str, card: CustomerCard | None) -> str | None:
    """A slot value the customer's data suggests: the order a return is most likely about (the newest
    delivered one without an open return), else their newest order."""
    if card is None or slot != "order_id" or not card.orders:
        return None
    if intent == "return_item":
        returning = {r.order for r in card.open_returns}
        for order in card.orders:
            if order.status == "delivered" and order.number not in returning:
                return order.number
    return card.orders[0].number


def next_best_action(domain: Domain, packet: HandoffPacket, summary: RunningSummary,
                     card: CustomerCard | None) -> NextAction | None:
    """The action for the newest request: one the caller stated on the bridged call, else one pending in the
    hand-off; slots from what the caller said (newest first), the hand-off's slots, then the customer's data.
    None when no request leads to an action."""
    candidates: list[tuple[str, str]] = []
    for heard in reversed(summary.heard):
        candidates.extend((i, f"the caller said \u201c{heard.text}\u201d") for i in heard.intents)
    candidates.extend((t.intent, "pending in the hand-off") for t in packet.intents_pending)
    for intent, because in candidates:
        found = action_of(domain, intent)
        if found is None:
            continue
        name, needed = found
        slots: dict[str, str] = {}
        for slot in needed:
            value = next((v for h in reversed(summary.heard) for k, v in h.slots if k == slot), None)
            if value is None:
                value = next((str(t.slots[slot]) for t in reversed(packet.intents_pending)
                              if t.intent == intent and t.slots.get(slot) is not None), None)
            if value is None and packet.slots.get(slot) is not None:
                value = str(packet.slots[slot])
            if value is None:
                value = _from_customer(slot, intent, card)
            if value is not None:
                slots[slot] = value
        missing = tuple(s for s in needed if s not in slots)
        return NextAction(name, intent, label(name, slots), slots, missing, because)
    return None


def parse_request(body: Mapping[str, Any], domain: Domain) -> tuple[str, dict[str, str]]:
    """``(action, slots)`` of the agent's request ``{"action": NAME, "slots": {SLOT: TEXT}}``; raises
    :class:`NextActionError` for an action the domain has no flow for or malformed slots."""
    name, slots = body.get("action"), body.get("slots", {})
    allowed = domain_actions(domain)
    if not isinstance(name, str) or name not in allowed:
        raise NextActionError(f'"action" must be one of {", ".join(sorted(allowed))}')
    if not isinstance(slots, Mapping) or not all(
            isinstance(k, str) and k in domain.slots and isinstance(v, str) and len(v) <= MAX_SLOT
            for k, v in slots.items()):
        raise NextActionError(f'"slots" must map slot names of the domain to texts of at most {MAX_SLOT} characters')
    clean = {k: v.strip() for k, v in slots.items() if v.strip()}
    missing = [s for s in allowed[name][1] if s not in clean]
    if missing:
        raise NextActionError(f"{name} needs {', '.join(missing)}")
    return name, clean


def run_as_agent(database: Database, action: str, slots: Mapping[str, str], *, customer_id: int,
                 contact_id: int | None, actor: str, now: datetime) -> ActionRun:
    """Run domain action ``action`` for the verified ``customer_id`` in one transaction, as ``actor``
    ("agent:alice"): a change is audited by the action itself under that name; an action that changes
    nothing (a look-up) gets an audit row of its own, so every agent action is on record."""
    fn = ACTIONS.get(action)
    if fn is None:
        raise NextActionError(f"action {action!r} is not registered")
    with database.session() as session:
        result: ActionResult = fn(ActionContext(session=session, slots=dict(slots), customer_id=customer_id,
                                                contact_id=contact_id, now=now, actor=actor))
        if not result.changed:
            record_change(session, at=now, actor=actor, entity="action", entity_id=None, action=action,
                          customer_id=customer_id, contact_id=contact_id,
                          after={"slots": dict(slots), "outcome": result.outcome})
    return ActionRun(action, label(action, slots), result.outcome, dict(result.data), result.changed)
