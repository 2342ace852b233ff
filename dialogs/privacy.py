"""Data protection: the right of access (export), the right to erasure (delete) and retention (purge).

What erasure keeps, and why (identity-check records are deleted with the customer row): orders, order items, invoices, returns and subscriptions stay for
accounting and tax law, but anonymised (their link to the customer is cut and free-text return reasons
are blanked). Contacts stay as statistics (channel, times, outcome, intents, frustration) without
caller ID, summary, transcript, hand-off packet or customer link, and their intents without slot values (a
new address, an e-mail). Audit rows about the customer or written during their contacts keep what was done
and when, with their before/after values removed. The customer row itself is deleted.
On SQLite, ``secure_delete`` (set by :class:`dialogs.db.Database`) overwrites the erased bytes.

Every function takes a Session and does not commit; the caller's transaction makes it all-or-nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Update, delete, or_, select, update
from sqlalchemy.orm import DeclarativeBase, Session

from dialogs.db.audit import record_change
from dialogs.db.models import (
    AuditLog,
    Contact,
    Customer,
    Invoice,
    Order,
    Return,
    Subscription,
    VerificationAttempt,
)
from dialogs.db.times import naive_utc

REDACTED = {"redacted": "erased on request of the data subject"}


class UnknownCustomer(LookupError):
    """No customer with this id (never existed, or already erased)."""

    def __init__(self, customer_id: int):
        super().__init__(f"no customer with id {customer_id} (never existed or already erased)")
        self.customer_id = customer_id


def _value(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    return v


def _row(obj: DeclarativeBase, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {c.key: _value(getattr(obj, c.key)) for c in obj.__table__.columns if c.key not in skip}


def _contacts_of(customer: Customer) -> ColumnElement[bool]:
    # Calls from the customer's number that were never linked to them hold their voice and words too.
    linked = Contact.customer_id == customer.id
    return or_(linked, Contact.caller_id == customer.phone) if customer.phone else linked


def export_customer(session: Session, customer_id: int) -> dict[str, Any]:
    """Everything stored about a customer as one JSON-able dict (right of access).

    Keys: customer (without the PIN hash, which is stated as stored), orders (with items), returns,
    invoices, subscriptions, contacts (linked to them or from their phone number, with transcripts),
    audit (rows about this customer), verification_attempts (identity checks: when, how, passed).
    Raises :class:`UnknownCustomer`."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(customer_id)
    person = _row(customer, skip=("pin_hash",))
    person["pin"] = "stored as a salted hash" if customer.pin_hash else None

    def rows(model: type[Any], *order: Any) -> list[Any]:
        return list(session.scalars(select(model).where(model.customer_id == customer_id).order_by(*order)))

    orders = []
    for order in rows(Order, Order.placed_at):
        entry = _row(order)
        entry["items"] = [_row(i, skip=("order_id",)) for i in order.items]
        orders.append(entry)
    return {
        "customer": person,
        "orders": orders,
        "returns": [_row(r) | {"order_number": r.order.number} for r in rows(Return, Return.created_at)],
        "invoices": [_row(i) for i in rows(Invoice, Invoice.issued_at)],
        "subscriptions": [_row(s) for s in rows(Subscription, Subscription.started_at)],
        "contacts": [_row(c) for c in session.scalars(
            select(Contact).where(_contacts_of(customer)).order_by(Contact.started_at, Contact.id)
        )],
        "audit": [_row(a) for a in rows(AuditLog, AuditLog.at, AuditLog.id)],
        "verification_attempts": [_row(v) for v in rows(VerificationAttempt, VerificationAttempt.at)],
    }


def _updated(session: Session, statement: Update) -> int:
    result = cast(CursorResult[Any], session.execute(statement))
    return int(result.rowcount or 0)


@dataclass(frozen=True)
class Erasure:
    """What :func:`delete_customer` did, in numbers (no personal data)."""

    customer_id: int
    orders_anonymised: int
    invoices_anonymised: int
    returns_anonymised: int
    subscriptions_anonymised: int
    contacts_erased: int
    audit_rows_redacted: int


_INTENT_STATISTICS = ("intent", "name", "status", "outcome", "confidence")


def _without_slots(intents: Any) -> Any:
    """A contact's intents as statistics: which, and how they ended; slot values are the caller's words."""
    if not isinstance(intents, list):
        return None
    return [{k: v for k, v in item.items() if k in _INTENT_STATISTICS} if isinstance(item, dict) else item
            for item in intents if isinstance(item, dict | str)]


def delete_customer(session: Session, customer_id: int, now: datetime, actor: str = "gdpr") -> Erasure:
    """Erase a customer's personal data (right to erasure); see the module docstring for what is kept.

    Writes one audit row (entity customer, action erase) holding only counts. Raises :class:`UnknownCustomer`."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise UnknownCustomer(customer_id)

    def cut(model: type[Any], **extra: Any) -> int:
        return _updated(session, update(model).where(model.customer_id == customer_id).values(customer_id=None, **extra))

    orders = cut(Order)
    invoices = cut(Invoice)
    returns = cut(Return, reason=None)
    subscriptions = cut(Subscription)
    contact_ids = list(session.scalars(select(Contact.id).where(_contacts_of(customer))))
    for contact in session.scalars(select(Contact).where(Contact.id.in_(contact_ids), Contact.intents.is_not(None))):
        contact.intents = _without_slots(contact.intents)
    contacts = _updated(session, update(Contact).where(Contact.id.in_(contact_ids)).values(
        customer_id=None, caller_id=None, summary=None, transcript=None, handoff=None
    ))
    about = or_(AuditLog.customer_id == customer_id, AuditLog.contact_id.in_(contact_ids))
    audits = _updated(session, update(AuditLog).where(about).values(before=None, after=REDACTED))
    session.execute(delete(VerificationAttempt).where(VerificationAttempt.customer_id == customer_id))
    session.delete(customer)
    session.flush()
    erasure = Erasure(customer_id, orders, invoices, returns, subscriptions, contacts, audits)
    record_change(session, at=now, actor=actor, entity="customer", entity_id=customer_id, action="erase",
                  customer_id=customer_id, after={k: v for k, v in erasure.__dict__.items() if k != "customer_id"})
    session.flush()
    return erasure


def purge_contacts(session: Session, now: datetime, retention_days: int, actor: str = "gdpr") -> int:
    """Erase caller ID, summary, transcript and hand-off packet of contacts that started more than
    ``retention_days`` ago; returns how many contacts were purged (an audit row records the count)."""
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    cutoff = naive_utc(now) - timedelta(days=retention_days)
    personal = or_(Contact.caller_id.is_not(None), Contact.summary.is_not(None),
                   Contact.transcript.is_not(None), Contact.handoff.is_not(None))
    count = _updated(session, update(Contact).where(Contact.started_at < cutoff, personal).values(
        caller_id=None, summary=None, transcript=None, handoff=None
    ))
    if count:
        record_change(session, at=now, actor=actor, entity="contact", entity_id=None, action="purge",
                      after={"contacts": count, "started_before": cutoff.isoformat()})
        session.flush()
    return count

