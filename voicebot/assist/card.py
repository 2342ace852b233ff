"""The customer's card on the agent page: orders, open returns, subscriptions and past contacts with their
summaries, read from the customer database for the customer the bot verified."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dialogs.db.models import Contact, Customer, Order, Return, Subscription
from dialogs.manager.handoff import HandoffPacket

OPEN_RETURNS = ("requested", "label_sent", "received")  # refunded is closed
RECENT = 5  # orders and past contacts on the card


@dataclass(frozen=True)
class CardOrder:
    number: str
    status: str
    placed_at: datetime
    total: str


@dataclass(frozen=True)
class CardReturn:
    rma: str
    order: str
    status: str
    reason: str | None


@dataclass(frozen=True)
class CardSubscription:
    plan: str
    status: str
    monthly_price: str
    renews_at: datetime | None


@dataclass(frozen=True)
class CardContact:
    started_at: datetime
    channel: str
    outcome: str | None
    summary: str | None


@dataclass(frozen=True)
class CustomerCard:
    """One customer as the agent sees them; the newest orders and contacts first."""

    id: int
    name: str
    city: str | None
    orders: tuple[CardOrder, ...]
    open_returns: tuple[CardReturn, ...]
    subscriptions: tuple[CardSubscription, ...]
    past_contacts: tuple[CardContact, ...]

    def to_dict(self) -> dict[str, Any]:
        """The card as JSON (times as ISO strings)."""
        return _iso(asdict(self))


def _iso(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_iso(v) for v in value]
    return value.isoformat() if isinstance(value, datetime) else value


def customer_card(session: Session, customer_id: int, exclude_contact: int | None = None) -> CustomerCard | None:
    """The card of ``customer_id`` (None for an unknown customer); ``exclude_contact``: the contact of the call
    in progress, not a past one."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    orders = session.scalars(select(Order).where(Order.customer_id == customer_id)
                             .order_by(Order.placed_at.desc()).limit(RECENT))
    returns = session.scalars(select(Return).where(Return.customer_id == customer_id,
                                                   Return.status.in_(OPEN_RETURNS)).order_by(Return.created_at))
    subs = session.scalars(select(Subscription).where(Subscription.customer_id == customer_id)
                           .order_by(Subscription.started_at.desc()))
    contacts = select(Contact).where(Contact.customer_id == customer_id, Contact.ended_at.is_not(None))
    if exclude_contact is not None:
        contacts = contacts.where(Contact.id != exclude_contact)
    return CustomerCard(
        id=customer.id,
        name=customer.name,
        city=customer.city,
        orders=tuple(CardOrder(o.number, o.status, o.placed_at, str(o.total)) for o in orders),
        open_returns=tuple(CardReturn(r.rma, r.order.number, r.status, r.reason) for r in returns),
        subscriptions=tuple(CardSubscription(s.plan, s.status, str(s.monthly_price), s.renews_at) for s in subs),
        past_contacts=tuple(CardContact(c.started_at, c.channel, c.outcome, c.summary) for c in
                            session.scalars(contacts.order_by(Contact.started_at.desc()).limit(RECENT))),
    )


def verified_customer(packet: HandoffPacket) -> tuple[int | None, int | None]:
    """``(customer id, contact id)`` of a hand-off packet; the customer id is None unless the bot verified the
    caller."""
    customer = packet.customer
    return (customer.id if customer is not None and customer.verified else None), packet.contact_id
