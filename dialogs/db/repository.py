"""What the dialog manager asks the database: who is calling, are they who they say, what is still open,
and the record of this contact.

Every function takes a :class:`~sqlalchemy.orm.Session` and never commits: the caller owns the
transaction (``Database.session()`` commits or rolls back). Times are naive UTC (see ``dialogs.db.times``).
Bad input from a caller (an unparsable phone number, date or PIN) gives ``None`` / ``False``, never an exception.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dialogs.db.models import AuditLog, Contact, Customer, Order, Return, Subscription, VerificationAttempt
from dialogs.db.security import check_pin
from dialogs.db.spoken import mask_email, on_day
from dialogs.db.times import naive_utc
from dialogs.jsonable import jsonable

VerifyMethod = Literal["postcode", "date_of_birth", "pin"]
MatterKind = Literal["return", "order", "contact", "subscription"]

# Contacts that ended like this left something undone, so the next call recalls them. Anything else
# (resolved, handed to an agent, ...) is considered dealt with.
OPEN_CONTACT_OUTCOMES = frozenset({"abandoned", "unresolved", "callback", "callback_requested", "no_agent"})
OPEN_RETURN_STATUSES = ("requested", "label_sent", "received")
OPEN_ORDER_STATUSES = ("processing", "shipped")

# A 4-digit PIN has 10,000 values: 10 failed checks a day (3 calls of 3 attempts) make guessing futile.
LOCKOUT_FAILURES = 10
LOCKOUT_WINDOW = timedelta(hours=24)

_DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%d.%m.%Y", "%B %d %Y", "%B %d, %Y", "%d %B %Y", "%b %d %Y", "%d %b %Y")


@dataclass(frozen=True)
class Matter:
    """Something unfinished the caller may be calling about."""

    kind: MatterKind
    id: int
    created_at: datetime
    text: str  # spoken, e.g. "the return you started on Tuesday for order 12034"
    order_id: str | None = None  # the order number a return or order matter is about (to pre-fill a slot)


def normalize_phone(raw: str | int | None, default_country: str = "1") -> str | None:
    """The E.164 form of a phone number or caller ID, or None if it is not a usable number.

    Accepts '+1 555-123-0001', '(555) 123-0001', '5551230001', '15551230001', '0015551230001',
    'sip:+15551230001@host' and '"Jane" <sip:5551230001@host>'. National numbers without a country
    code get ``default_country`` (NANP '1': 10 digits, or 11 starting with 1)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not raw or not isinstance(raw, str):
        return None
    text = raw.strip()
    uri = re.search(r"(?:sips?|tel):([^@;>]+)", text)
    if uri:
        text = uri.group(1)
    international = text.startswith("+")
    digits = re.sub(r"\D", "", text)
    if not international:
        for prefix in ("00", "011") if default_country == "1" else ("00",):
            if digits.startswith(prefix) and len(digits) - len(prefix) >= 8:
                digits, international = digits[len(prefix) :], True
                break
    if not international:
        if default_country == "1":
            if len(digits) == 11 and digits.startswith("1"):
                digits = digits[1:]
            if len(digits) != 10:
                return None
        else:
            digits = digits.lstrip("0")
        digits = default_country + digits
    if not 8 <= len(digits) <= 15:
        return None
    return "+" + digits


def find_customer_by_phone(session: Session, phone: str | int | None) -> Customer | None:
    """The one customer whose phone is ``phone`` (any common spelling), else None.

    A number shared by several customers identifies nobody: None."""
    e164 = normalize_phone(phone)
    if e164 is None:
        return None
    found = session.scalars(select(Customer).where(Customer.phone == e164).limit(2)).all()
    return found[0] if len(found) == 1 else None


def normalize_postcode(value: str) -> str:
    return re.sub(r"[\s\-]", "", value).upper()


def parse_date(value: str | date | datetime | None) -> date | None:
    """A date from a date, an ISO string or a few common written forms; None if unparsable."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", str(value).strip())
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def verify_identity(
    session: Session,
    customer_id: int,
    method: str,
    value: str | date | None,
    *,
    now: datetime | None = None,
    contact_id: int | None = None,
) -> bool:
    """True if ``value`` matches the customer's stored postcode, date of birth or PIN.

    Postcodes compare without case, spaces or hyphens (a ZIP+4 matches its 5-digit ZIP); a PIN is
    checked against its salted hash. Unknown customer, unknown method or unreadable value: False.

    Given ``now``, the attempt is recorded, and once :func:`verification_locked` (LOCKOUT_FAILURES
    failures within LOCKOUT_WINDOW since the last success, across all calls) every check fails, even
    a right one, so a PIN cannot be guessed by calling again and again."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        return False
    locked = now is not None and verification_locked(session, customer_id, now)
    ok = not locked and _matches(customer, method, value)
    if now is not None:
        session.add(VerificationAttempt(customer_id=customer_id, contact_id=contact_id, at=naive_utc(now),
                                        method=str(method)[:20], success=ok))
        session.flush()
    return ok


def verification_locked(
    session: Session,
    customer_id: int,
    now: datetime,
    failures: int = LOCKOUT_FAILURES,
    window: timedelta = LOCKOUT_WINDOW,
) -> bool:
    """True if the customer's identity checks failed ``failures`` times within ``window`` before ``now``
    with no success after them."""
    now = naive_utc(now)
    since = now - window
    last_ok = session.scalar(
        select(func.max(VerificationAttempt.at)).where(
            VerificationAttempt.customer_id == customer_id, VerificationAttempt.success.is_(True),
            VerificationAttempt.at >= since,
        )
    )
    failed = session.scalar(
        select(func.count()).select_from(VerificationAttempt).where(
            VerificationAttempt.customer_id == customer_id, VerificationAttempt.success.is_(False),
            VerificationAttempt.at > (last_ok or since), VerificationAttempt.at <= now,
        )
    )
    return (failed or 0) >= failures


def _matches(customer: Customer, method: str, value: str | date | None) -> bool:
    if value is None:
        return False
    if method == "postcode":
        if not customer.postcode or not isinstance(value, str | int):
            return False
        given, stored = normalize_postcode(str(value)), normalize_postcode(customer.postcode)
        if given == stored:
            return True
        return len(stored) == 5 and stored.isdigit() and len(given) == 9 and given.isdigit() and given[:5] == stored
    if method == "date_of_birth":
        return customer.date_of_birth is not None and parse_date(value) == customer.date_of_birth
    if method == "pin":
        if not isinstance(value, str | int) or isinstance(value, bool):
            return False
        digits = re.sub(r"\D", "", str(value))
        return bool(digits) and check_pin(digits, customer.pin_hash)
    return False


def customer_summary(session: Session, customer_id: int) -> dict[str, Any]:
    """Fields safe to use in prompts before and after verification; {} for an unknown customer.

    Keys: id, name, first_name, last_name, email_masked, city, verification_methods (the methods this
    customer can be verified by, i.e. for which data is stored)."""
    c = session.get(Customer, customer_id)
    if c is None:
        return {}
    methods = [
        m
        for m, present in (("postcode", c.postcode), ("date_of_birth", c.date_of_birth), ("pin", c.pin_hash))
        if present
    ]
    return {
        "id": c.id,
        "name": c.name,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "email_masked": mask_email(c.email) if c.email else None,
        "city": c.city,
        "verification_methods": methods,
    }


def new_rma(order_number: str, at: datetime) -> str:
    """A return authorisation code: 'R' and 6 characters derived from the order and the time (no I/O)."""
    digest = hashlib.sha256(f"{order_number}|{at.isoformat()}".encode()).digest()
    return "R" + base64.b32encode(digest).decode()[:6]


def _kind(name: str) -> str:
    return name[:-1] if name.endswith("s") else name


def open_matters(
    session: Session,
    customer_id: int,
    now: datetime,
    kinds: Iterable[str],
    days: int,
    *,
    topics: Mapping[str, str] | None = None,
) -> list[Matter]:
    """Unfinished business of a customer from the last ``days`` days, to recall at the start of a call.

    ``kinds`` (singular or plural: "return"/"returns", "order", "contact", "subscription") says what is
    remembered, and its order is the priority; within a kind the newest comes first.

    - return: a return not yet refunded ("the return you started on Tuesday for order 12034")
    - order: an order still processing or shipped ("your order 45281, which was shipped on Monday")
    - contact: an earlier call or chat that ended with an outcome in OPEN_CONTACT_OUTCOMES ("your call on
      Monday about the return"); ``topics`` maps intent names to spoken phrases (a domain's ``announce``),
      otherwise the intent name is read with spaces
    - subscription: a subscription cancelled in the window whose paid period has not ended
    """
    now = naive_utc(now)
    since = now - timedelta(days=days)
    out: list[Matter] = []
    for kind in dict.fromkeys(_kind(k) for k in kinds):
        if kind == "return":
            rows = session.scalars(
                select(Return)
                .where(Return.customer_id == customer_id, Return.status.in_(OPEN_RETURN_STATUSES))
                .where(Return.created_at >= since)
                .order_by(Return.created_at.desc())
            )
            out += [
                Matter("return", r.id, r.created_at,
                       f"the return you started {on_day(r.created_at, now)} for order {r.order.number}",
                       order_id=r.order.number)
                for r in rows
            ]
        elif kind == "order":
            orders = session.scalars(
                select(Order)
                .where(Order.customer_id == customer_id, Order.status.in_(OPEN_ORDER_STATUSES))
                .where(Order.placed_at >= since)
                .order_by(Order.placed_at.desc())
            )
            for o in orders:
                if o.status == "shipped" and o.shipped_at is not None:
                    text = f"your order {o.number}, which was shipped {on_day(o.shipped_at, now)}"
                else:
                    text = f"your order {o.number}, placed {on_day(o.placed_at, now)}, which is being prepared"
                out.append(Matter("order", o.id, o.placed_at, text, order_id=o.number))
        elif kind == "contact":
            contacts = session.scalars(
                select(Contact)
                .where(Contact.customer_id == customer_id, Contact.ended_at.is_not(None))
                .where(Contact.outcome.in_(OPEN_CONTACT_OUTCOMES), Contact.started_at >= since)
                .order_by(Contact.started_at.desc())
            )
            for c in contacts:
                what = "chat" if c.channel == "chat" else "call"
                topic = _topic(c.intents, topics or {})
                about = f" about {topic}" if topic else ""
                out.append(Matter("contact", c.id, c.started_at, f"your {what} {on_day(c.started_at, now)}{about}"))
        elif kind == "subscription":
            subs = session.scalars(
                select(Subscription)
                .where(Subscription.customer_id == customer_id, Subscription.status == "cancelled")
                .where(Subscription.cancelled_at >= since)
                .order_by(Subscription.cancelled_at.desc())
            )
            for s in subs:
                if s.cancelled_at is None or (s.renews_at is not None and s.renews_at < now):
                    continue
                out.append(Matter("subscription", s.id, s.cancelled_at,
                                  f"your {s.plan} subscription, which you cancelled {on_day(s.cancelled_at, now)}"))
        else:
            raise ValueError(f"unknown kind of matter {kind!r} (return, order, contact, subscription)")
    return out


def _topic(intents: Any, phrases: Mapping[str, str]) -> str:
    """What an earlier contact was about: its unfinished intents if it recorded task status, else all."""
    names: list[str] = []
    unfinished: list[str] = []
    for item in intents if isinstance(intents, list) else []:
        name = (item.get("intent") or item.get("name")) if isinstance(item, dict) else item
        if not isinstance(name, str) or not name or name in names:
            continue
        names.append(name)
        if isinstance(item, dict) and item.get("status") not in (None, "done"):
            unfinished.append(name)
    chosen = (unfinished or names)[:2]
    return " and ".join(phrases.get(n) or n.replace("_", " ") for n in chosen)


def open_contact(
    session: Session, channel: str, caller_id: str | None, now: datetime, customer_id: int | None = None
) -> int:
    """Record the start of a call or chat; returns its contact id. The caller ID is stored in E.164 when
    it is a phone number, as given otherwise."""
    contact = Contact(
        channel=channel,
        caller_id=(normalize_phone(caller_id) or caller_id or None) if caller_id else None,
        customer_id=customer_id,
        started_at=naive_utc(now),
    )
    session.add(contact)
    session.flush()
    return contact.id


def close_stale_contacts(session: Session) -> int:
    """Close contacts left open by a process that died: outcome ``interrupted``, ended at their last activity
    (the latest audit or identity-check row of the contact, else its start), so downtime is not contact time.
    Returns how many. For start-up only: a contact still running in another process would be closed too."""
    stale = list(session.scalars(select(Contact).where(Contact.ended_at.is_(None))))
    for contact in stale:
        last_audit = session.scalar(select(func.max(AuditLog.at)).where(AuditLog.contact_id == contact.id))
        last_check = session.scalar(select(func.max(VerificationAttempt.at))
                                    .where(VerificationAttempt.contact_id == contact.id))
        contact.ended_at = max(t for t in (contact.started_at, last_audit, last_check) if t is not None)
        contact.outcome = "interrupted"
    return len(stale)


def close_contact(
    session: Session,
    contact_id: int,
    now: datetime,
    outcome: str,
    summary: str | None,
    intents: list[Any] | None,
    transcript: list[Any] | None,
    handoff: dict[str, Any] | None,
    frustration: float | None,
    customer_id: int | None = None,
) -> None:
    """Record how a contact ended. ``customer_id``, if given, records who it turned out to be.

    Raises LookupError for a contact id that does not exist (a bug in the caller, not bad input)."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise LookupError(f"no contact with id {contact_id}")
    contact.ended_at = naive_utc(now)
    contact.outcome = outcome
    contact.summary = summary
    contact.intents = jsonable(intents)
    contact.transcript = jsonable(transcript)
    contact.handoff = jsonable(handoff)
    contact.frustration_max = None if frustration is None else float(frustration)
    if customer_id is not None:
        contact.customer_id = customer_id
    session.flush()
