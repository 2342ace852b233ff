"""The demo retail data set: two fixed customers that tests and docs rely on, plus ~50 generated ones.

Everything is derived from ``now`` and ``seed``: the same arguments give the same database (PIN salts
included). Dates are relative to ``now`` so the demo always looks current.

Fixed customers (ids 1 and 2, inserted first):

=====================  ==========================================  ==========================================
fact                   Jane Doe (id 1)                             John Smith (id 2)
=====================  ==========================================  ==========================================
phone (caller ID)      +15551230001                                +15551230002
postcode               94107 (San Francisco)                       10001 (New York)
date of birth          1985-04-12                                  1990-01-30
keypad PIN             4321                                        1234
email                  jane.doe@example.com                        john.smith@example.com
orders                 45281 shipped with UPS 2 days before now,   77310 processing, placed 1 day before now;
                       tracking 1Z999AA10123454812, ETA now+2 d;   63950 delivered 12 days before now
                       12034 delivered 5 days before now
                       (return-eligible)
returns                none                                        one for 63950, started 2 days before now,
                                                                   status label_sent (an open matter)
subscription           "Premium monthly", 12.99, active, billed    none
                       on the 1st, renews on the 1st of next month
billing                charged 12.99 twice in the current month    order invoices only, all paid
                       (the double charge), earlier months once
=====================  ==========================================  ==========================================

Generated customers have phones +1555123xxxx from 0003 on, ``@example.com`` emails, random PINs
(only the hash is stored, so use Jane or John when a PIN is needed), 0-4 orders in every status,
some returns, subscriptions (some cancelled, a few invoices due or overdue) and past contacts with
short transcripts (outcomes resolved / handoff / abandoned).
"""

from __future__ import annotations

import calendar
import functools
import random
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dialogs.db.audit import record_change
from dialogs.db.models import Contact, Customer, Invoice, Order, OrderItem, Return, Subscription
from dialogs.db.repository import new_rma
from dialogs.db.security import hash_pin
from dialogs.db.times import naive_utc

JANE = {
    "first_name": "Jane", "last_name": "Doe", "phone": "+15551230001", "postcode": "94107",
    "date_of_birth": date(1985, 4, 12), "pin": "4321", "email": "jane.doe@example.com",
    "address_line": "185 Berry Street", "city": "San Francisco",
}
JOHN = {
    "first_name": "John", "last_name": "Smith", "phone": "+15551230002", "postcode": "10001",
    "date_of_birth": date(1990, 1, 30), "pin": "1234", "email": "john.smith@example.com",
    "address_line": "350 West 31st Street", "city": "New York",
}
FIXED_ORDER_NUMBERS = frozenset({"45281", "12034", "77310", "63950"})
GENERATED_CUSTOMERS = 50

_FIRST = ["Maria", "James", "Aisha", "Wei", "Carlos", "Olivia", "Noah", "Priya", "Liam", "Sofia", "Ethan",
          "Fatima", "Lucas", "Emma", "Mateo", "Chloe", "Daniel", "Yuki", "Grace", "Omar", "Hannah", "Diego",
          "Isabella", "Kwame", "Mia", "Ravi", "Lily", "Samuel", "Ana", "Benjamin", "Zoe", "Hiroshi", "Nora",
          "Elijah", "Leila", "Marcus", "Ava", "Tomasz", "Ruth", "Andre"]
_LAST = ["Garcia", "Johnson", "Khan", "Chen", "Rodriguez", "Williams", "Brown", "Patel", "Jones", "Miller",
         "Davis", "Nguyen", "Martinez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Okafor", "Lee",
         "Walker", "Hall", "Young", "Kowalski", "Allen", "Wright", "Lopez", "Hill", "Scott", "Green", "Adams",
         "Baker", "Nelson", "Carter", "Mitchell", "Perez", "Roberts", "Turner", "Phillips", "Campbell"]
_PLACES = [("Chicago", "60614"), ("Austin", "78701"), ("Seattle", "98101"), ("Denver", "80202"),
           ("Boston", "02108"), ("Portland", "97205"), ("Atlanta", "30303"), ("Miami", "33131"),
           ("Phoenix", "85004"), ("Minneapolis", "55401"), ("Nashville", "37203"), ("San Diego", "92101"),
           ("Philadelphia", "19103"), ("Columbus", "43215"), ("Raleigh", "27601"), ("Salt Lake City", "84111")]
_STREETS = ["Oak Street", "Maple Avenue", "Pine Road", "Cedar Lane", "Elm Street", "Washington Avenue",
            "Lake Drive", "Hillcrest Road", "Park Avenue", "Sunset Boulevard", "Main Street", "River Road"]
_CATALOG = [("TS-100", "cotton T-shirt", "19.90"), ("JN-210", "slim jeans", "59.00"),
            ("SN-330", "running shoes", "89.95"), ("HD-120", "hooded sweatshirt", "44.50"),
            ("BK-410", "canvas backpack", "39.99"), ("WT-510", "steel water bottle", "14.99"),
            ("JK-610", "rain jacket", "119.00"), ("SC-700", "wool scarf", "24.90"),
            ("HP-800", "wireless headphones", "79.00"), ("SK-020", "sports socks, 3 pairs", "12.50")]
_PLANS = [("Basic monthly", "5.99"), ("Premium monthly", "12.99"), ("Family monthly", "19.99")]
_RETURN_REASONS = ["wrong size", "arrived damaged", "not as described", "changed my mind", "too late for the event"]
_CONTACT_STORIES = [
    (["order_status"], "asked where order {order} is", "resolved",
     [("caller", "Hi, where is my order {order}?"), ("bot", "Your order {order} has been shipped.")]),
    (["billing_question"], "questioned a charge", "handoff",
     [("caller", "There is a charge on my card I don't recognise."),
      ("bot", "I'll put you through to a colleague from billing.")]),
    (["start_return"], "started a return, hung up before choosing a reason", "abandoned",
     [("caller", "I want to send something back."), ("bot", "Which order is it about?")]),
]


def _add_months(when: datetime, months: int) -> datetime:
    month0 = when.month - 1 + months
    year, month = when.year + month0 // 12, month0 % 12 + 1
    return when.replace(year=year, month=month, day=min(when.day, calendar.monthrange(year, month)[1]))


@functools.lru_cache(maxsize=512)
def _demo_pin_hash(pin: str, salt: bytes) -> str:
    # The salts come from the seeded generator, so every seeding of the demo asks for the same hashes;
    # remembering them makes re-seeding (one fresh database per test) cost milliseconds, not seconds.
    return hash_pin(pin, salt=salt)


def _customer(rng: random.Random, now: datetime, facts: dict[str, object]) -> Customer:
    return Customer(
        first_name=facts["first_name"], last_name=facts["last_name"], email=facts["email"],
        phone=facts["phone"], date_of_birth=facts["date_of_birth"], postcode=facts["postcode"],
        address_line=facts["address_line"], city=facts["city"], country="US",
        pin_hash=_demo_pin_hash(str(facts["pin"]), rng.randbytes(16)),
        created_at=now - timedelta(days=rng.randint(200, 1800), minutes=rng.randint(0, 1439)),
    )


def _order(rng: random.Random, number: str, customer: Customer, placed_at: datetime) -> Order:
    picks = rng.sample(_CATALOG, rng.randint(1, 3))
    items = [OrderItem(sku=s, name=n, quantity=rng.choice((1, 1, 1, 2)), unit_price=Decimal(p)) for s, n, p in picks]
    total = sum((i.unit_price * i.quantity for i in items), Decimal("0.00"))
    return Order(number=number, customer=customer, placed_at=placed_at, status="processing", items=items, total=total)


def _ship(rng: random.Random, order: Order, shipped_at: datetime, carrier: str | None = None) -> None:
    order.carrier = carrier or rng.choice(("UPS", "FedEx", "USPS"))
    if order.carrier == "UPS":
        order.tracking_number = "1Z" + "".join(rng.choices("0123456789ABCDEFGHJKLMNPRSTUVWXYZ", k=16))
    elif order.carrier == "FedEx":
        order.tracking_number = "".join(rng.choices("0123456789", k=12))
    else:
        order.tracking_number = "9400" + "".join(rng.choices("0123456789", k=18))
    order.shipped_at = shipped_at
    order.eta = (shipped_at + timedelta(days=rng.randint(2, 4))).date()
    order.status = "shipped"


def _deliver(order: Order, delivered_at: datetime) -> None:
    order.delivered_at = delivered_at
    order.eta = delivered_at.date()
    order.status = "delivered"


def _order_invoice(session: Session, order: Order) -> None:
    status = "refunded" if order.status in ("cancelled", "returned") else "paid"
    session.add(Invoice(customer=order.customer, issued_at=order.placed_at, amount=order.total, status=status,
                        description=f"Order {order.number}"))


def _subscription_invoices(session: Session, sub: Subscription, until: datetime) -> list[Invoice]:
    """One paid invoice per month from the start up to ``until`` (``sub`` must be flushed: it needs an id)."""
    out: list[Invoice] = []
    at, n = sub.started_at, 0
    while at <= until:
        out.append(Invoice(customer_id=sub.customer_id, subscription_id=sub.id, issued_at=at,
                           amount=sub.monthly_price, status="paid", description=f"{sub.plan}, {at:%B %Y}"))
        n += 1
        at = _add_months(sub.started_at, n)
    session.add_all(out)
    return out


def seed_demo(session: Session, now: datetime, seed: int = 0) -> dict[str, int]:
    """Fill an empty database with the demo data set (see the module docstring for the fixed facts).

    Returns the number of rows per table afterwards. Does not commit (the caller's session does)."""
    now = naive_utc(now).replace(microsecond=0)
    rng = random.Random(seed)

    jane = _customer(rng, now, JANE)
    john = _customer(rng, now, JOHN)
    session.add_all([jane, john])

    # Jane: one parcel on its way, one delivered 5 days ago (returnable), a subscription billed twice this month.
    o = _order(rng, "45281", jane, now - timedelta(days=3, hours=4))
    _ship(rng, o, now - timedelta(days=2, hours=6), carrier="UPS")
    o.tracking_number = "1Z999AA10123454812"
    o.eta = (now + timedelta(days=2)).date()
    o2 = _order(rng, "12034", jane, now - timedelta(days=9, hours=2))
    _ship(rng, o2, now - timedelta(days=8, hours=5), carrier="USPS")
    _deliver(o2, now - timedelta(days=5))
    session.add_all([o, o2])
    for order in (o, o2):
        _order_invoice(session, order)
    month_start = now.replace(day=1, hour=0, minute=0, second=0)
    billing_day = month_start + timedelta(hours=9)
    premium = Subscription(customer=jane, plan="Premium monthly", monthly_price=Decimal("12.99"), status="active",
                           started_at=_add_months(billing_day, -7), renews_at=_add_months(billing_day, 1))
    session.add(premium)
    session.flush()
    _subscription_invoices(session, premium, _add_months(billing_day, -1))
    elapsed = now - month_start
    first = month_start + min(timedelta(hours=9), elapsed / 3)
    second = first + min(timedelta(minutes=2), elapsed / 3)  # the payment provider's retry charged again
    session.add_all(
        Invoice(customer_id=jane.id, subscription_id=premium.id, issued_at=at, amount=premium.monthly_price,
                status="paid", description=f"{premium.plan}, {at:%B %Y}")
        for at in (first, second)
    )

    # John: an order being prepared, and a return started two days ago.
    o3 = _order(rng, "77310", john, now - timedelta(days=1, hours=3))
    o4 = _order(rng, "63950", john, now - timedelta(days=16))
    _ship(rng, o4, now - timedelta(days=15), carrier="FedEx")
    _deliver(o4, now - timedelta(days=12))
    session.add_all([o3, o4])
    for order in (o3, o4):
        _order_invoice(session, order)
    session.flush()
    started = now - timedelta(days=2, hours=1)
    session.add(Return(order=o4, customer_id=john.id, reason="wrong size", status="label_sent",
                       rma=new_rma(o4.number, started), created_at=started))

    _generate(session, rng, now)
    session.flush()
    counts = {
        model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
        for model in (Customer, Order, Return, Invoice, Subscription, Contact)
    }
    record_change(session, at=now, actor="demo", entity="database", entity_id=None, action="seed_demo",
                  after={"seed": seed} | counts)
    return counts


def _generate(session: Session, rng: random.Random, now: datetime) -> None:
    numbers = [n for n in (f"{x:05d}" for x in rng.sample(range(10000, 100000), 400)) if n not in FIXED_ORDER_NUMBERS]
    used_names: set[tuple[str, str]] = set()
    for i in range(GENERATED_CUSTOMERS):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        while (first, last) in used_names:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
        used_names.add((first, last))
        city, postcode = rng.choice(_PLACES)
        facts: dict[str, object] = {
            "first_name": first, "last_name": last, "phone": f"+1555123{i + 3:04d}",
            "email": f"{first.lower()}.{last.lower()}@example.com", "postcode": postcode, "city": city,
            "address_line": f"{rng.randint(1, 2400)} {rng.choice(_STREETS)}",
            "date_of_birth": date(1950, 1, 1) + timedelta(days=rng.randint(0, 54 * 365)),
            "pin": f"{rng.randint(0, 9999):04d}",
        }
        customer = _customer(rng, now, facts)
        session.add(customer)

        for _ in range(rng.randint(0, 4)):
            recent = rng.random() < 0.15  # some parcels still being prepared or on their way
            age = timedelta(days=rng.uniform(0.2, 3) if recent else rng.uniform(3, 150))
            order = _order(rng, numbers.pop(), customer, now - age)
            session.add(order)
            if age > timedelta(days=3) and rng.random() < 0.07:
                order.status = "cancelled"
            elif age > timedelta(days=1):
                _ship(rng, order, order.placed_at + timedelta(hours=rng.randint(10, 30)))
                delivered = order.shipped_at + timedelta(days=rng.randint(2, 4)) if order.shipped_at else now
                if delivered < now:
                    _deliver(order, delivered)
                    if rng.random() < 0.12:
                        _generate_return(session, rng, order, now)
            _order_invoice(session, order)

        # A few customers always have an unpaid bill, so the demo shows every invoice status.
        unpaid = {7: "due", 13: "overdue", 29: "overdue"}.get(i)
        if unpaid or rng.random() < 0.35:
            _generate_subscription(session, rng, customer, now, unpaid)

        if rng.random() < 0.25 and customer.orders:
            intents, summary, outcome, lines = rng.choice(_CONTACT_STORIES)
            number = customer.orders[-1].number
            started = now - timedelta(days=rng.uniform(1, 60))
            session.flush()
            session.add(Contact(
                channel=rng.choice(("sip", "sip", "webrtc")), caller_id=customer.phone,
                customer_id=customer.id, started_at=started, ended_at=started + timedelta(seconds=rng.randint(40, 300)),
                outcome=outcome, summary=summary.format(order=number), intents=list(intents),
                transcript=[{"speaker": who, "text": text.format(order=number)} for who, text in lines],
                handoff={"queue": "billing", "reason": "billing question"} if outcome == "handoff" else None,
                frustration_max=round(rng.uniform(0.05, 0.8), 2),
            ))


def _generate_return(session: Session, rng: random.Random, order: Order, now: datetime) -> None:
    assert order.delivered_at is not None
    created = order.delivered_at + timedelta(days=rng.uniform(0.5, 10))
    if created >= now:
        return
    days = (now - created).days
    status = "refunded" if days > 14 else "received" if days > 7 else rng.choice(("requested", "label_sent"))
    if status == "refunded":
        order.status = "returned"
    session.flush()
    session.add(Return(order=order, customer_id=order.customer_id, reason=rng.choice(_RETURN_REASONS),
                       status=status, rma=new_rma(order.number, created), created_at=created))


def _generate_subscription(
    session: Session, rng: random.Random, customer: Customer, now: datetime, unpaid: str | None
) -> None:
    plan, price = rng.choice(_PLANS)
    started = now - timedelta(days=rng.randint(20, 400), hours=rng.randint(0, 23))
    sub = Subscription(customer=customer, plan=plan, monthly_price=Decimal(price), status="active", started_at=started)
    cancelled = not unpaid and rng.random() < 0.2
    if cancelled:
        sub.status = "cancelled"
        sub.cancelled_at = started + (now - started) * rng.uniform(0.1, 1.0)
    session.add(sub)
    session.flush()
    invoices = _subscription_invoices(session, sub, sub.cancelled_at or now)
    # Paid until the next billing date; after cancelling that is when the service ends.
    sub.renews_at = _add_months(started, len(invoices))
    if unpaid:
        invoices[-1].status = unpaid
