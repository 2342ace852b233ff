"""dialogs.db: demo data, phone lookup, identity verification, open matters, contacts, transactions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from demo_db import NOW, demo_copy
from sqlalchemy import func, select

from dialogs.db.demo import seed_demo
from dialogs.db.engine import Database, DatabaseError, ensure_database
from dialogs.db.models import (
    Base,
    Contact,
    Customer,
    Invoice,
    Order,
    Return,
    Subscription,
    VerificationAttempt,
)
from dialogs.db.repository import (
    LOCKOUT_FAILURES,
    LOCKOUT_WINDOW,
    close_contact,
    customer_summary,
    find_customer_by_phone,
    normalize_phone,
    open_contact,
    open_matters,
    verification_locked,
    verify_identity,
)
from dialogs.db.spoken import day_name, money, on_day


@pytest.fixture()
def db(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(demo_copy(tmp_path, tmp_path_factory))
    yield database
    database.dispose()


def count(db: Database, model: type) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_demo_has_the_documented_fixed_customers(db):
    with db.session() as s:
        jane, john = s.get(Customer, 1), s.get(Customer, 2)
        assert (jane.name, jane.phone, jane.postcode, jane.email) == (
            "Jane Doe", "+15551230001", "94107", "jane.doe@example.com")
        assert jane.date_of_birth == date(1985, 4, 12)
        assert jane.pin_hash.startswith("scrypt$") and "4321" not in jane.pin_hash
        orders = {o.number: o for o in jane.orders}
        assert orders["45281"].status == "shipped" and orders["45281"].carrier == "UPS"
        assert orders["45281"].tracking_number == "1Z999AA10123454812"
        assert orders["12034"].status == "delivered"
        assert orders["12034"].delivered_at.date() == (NOW - timedelta(days=5)).date()
        [sub] = jane.subscriptions
        assert (sub.plan, sub.monthly_price, sub.status) == ("Premium monthly", Decimal("12.99"), "active")
        this_month = [i for i in jane.invoices if (i.issued_at.year, i.issued_at.month) == (NOW.year, NOW.month)
                      and i.subscription_id == sub.id]
        assert [i.amount for i in this_month] == [Decimal("12.99"), Decimal("12.99")]

        assert (john.name, john.phone, john.postcode, john.date_of_birth) == (
            "John Smith", "+15551230002", "10001", date(1990, 1, 30))
        assert {o.number: o.status for o in john.orders}["77310"] == "processing"
        assert john.subscriptions == []
        [ret] = s.scalars(select(Return).where(Return.customer_id == 2)).all()
        assert ret.created_at.date() == (NOW - timedelta(days=2)).date() and ret.status != "refunded"
        assert 45 <= s.scalar(select(func.count()).select_from(Customer)) <= 60
        assert len(set(s.scalars(select(Customer.phone)))) == s.scalar(select(func.count()).select_from(Customer))


def test_demo_data_is_deterministic_and_consistent(db, tmp_path):
    again = Database(f"sqlite:///{tmp_path / 'again.db'}")
    again.create_all()
    with again.session() as s:
        seed_demo(s, NOW)

    def dump(database: Database) -> list:
        with database.session() as s:
            return [list(map(tuple, s.execute(select(t)).all())) for t in Base.metadata.sorted_tables]

    assert dump(again) == dump(db)
    again.dispose()
    with db.session() as s:
        for order in s.scalars(select(Order)):
            assert len(order.number) == 5 and order.number.isdigit()
            assert order.total == sum(i.unit_price * i.quantity for i in order.items)
            if order.status in ("shipped", "delivered"):
                assert order.carrier and order.tracking_number and order.shipped_at >= order.placed_at
            assert order.placed_at <= NOW
        assert set(s.scalars(select(Order.status))) == {"processing", "shipped", "delivered", "cancelled", "returned"}
        assert {"paid", "due", "overdue", "refunded"} <= set(s.scalars(select(Invoice.status)))


@pytest.mark.parametrize("spelling", [
    "+15551230001", "+1 555-123-0001", "5551230001", "(555) 123-0001", "15551230001", "0015551230001",
    "sip:+15551230001@10.0.0.1;user=phone", '"Jane" <sip:5551230001@pbx.example.com>',
])
def test_find_customer_by_phone_accepts_common_spellings(db, spelling):
    with db.session() as s:
        customer = find_customer_by_phone(s, spelling)
        assert customer is not None and customer.first_name == "Jane"


@pytest.mark.parametrize("spelling", ["+15559999999", "anonymous", "", "123", None, "sip:anonymous@invalid"])
def test_unknown_or_unusable_numbers_find_nobody(db, spelling):
    with db.session() as s:
        assert find_customer_by_phone(s, spelling) is None


def test_normalize_phone_keeps_international_numbers():
    assert normalize_phone("+44 20 7946 0958") == "+442079460958"
    assert normalize_phone("0044 20 7946 0958") == "+442079460958"
    assert normalize_phone("555-0100") is None


@pytest.mark.parametrize(("method", "value", "ok"), [
    ("postcode", "94107", True), ("postcode", " 94 107 ", True), ("postcode", "94107-1234", True),
    ("postcode", "94108", False), ("postcode", "", False),
    ("date_of_birth", date(1985, 4, 12), True), ("date_of_birth", "1985-04-12", True),
    ("date_of_birth", "April 12th, 1985", True), ("date_of_birth", "1985-04-13", False),
    ("date_of_birth", "not a date", False),
    ("pin", "4321", True), ("pin", "4 3 2 1", True), ("pin", "1234", False), ("pin", "", False),
    ("pin", "#", False), ("fingerprint", "4321", False),
])
def test_verify_identity(db, method, value, ok):
    with db.session() as s:
        assert verify_identity(s, 1, method, value) is ok


def test_verify_identity_of_unknown_customer_is_false(db):
    with db.session() as s:
        assert verify_identity(s, 99999, "pin", "4321") is False


def test_repeated_failures_lock_verification_across_calls_until_the_window_passes(db):
    with db.session() as s:
        assert verify_identity(s, 1, "pin", "0000") is False  # no `now`: nothing recorded
        assert s.scalar(select(func.count()).select_from(VerificationAttempt)) == 0
        for i in range(LOCKOUT_FAILURES - 1):
            assert not verify_identity(s, 1, "postcode", "00000", now=NOW + timedelta(minutes=i), contact_id=i)
        assert verify_identity(s, 1, "pin", "4321", now=NOW + timedelta(minutes=20))  # a success resets
        for i in range(LOCKOUT_FAILURES):
            assert not verify_identity(s, 1, "pin", f"{i:04d}", now=NOW + timedelta(minutes=30 + i))
        later = NOW + timedelta(minutes=45)
        assert verification_locked(s, 1, later)
        assert verify_identity(s, 1, "pin", "4321", now=later) is False  # right PIN, still refused
        assert not verification_locked(s, 2, later)  # other customers are not affected
        next_day = NOW + LOCKOUT_WINDOW + timedelta(hours=1)
        assert verify_identity(s, 1, "pin", "4321", now=next_day) is True
        attempts = s.scalars(select(VerificationAttempt).where(VerificationAttempt.customer_id == 1)).all()
        assert len(attempts) == 2 * LOCKOUT_FAILURES + 2 and attempts[0].contact_id == 0


def test_customer_summary_holds_only_prompt_safe_fields(db):
    with db.session() as s:
        summary = customer_summary(s, 1)
        assert customer_summary(s, 99999) == {}
    assert summary["first_name"] == "Jane" and summary["name"] == "Jane Doe"
    assert summary["email_masked"] == "j***@example.com"
    assert set(summary["verification_methods"]) == {"postcode", "date_of_birth", "pin"}
    text = repr(summary)
    for secret in ("94107", "1985", "scrypt", "+15551230001", "jane.doe@"):
        assert secret not in text


def test_open_matters_recall_johns_return_first(db):
    with db.session() as s:
        matters = open_matters(s, 2, NOW, ["returns", "orders", "contacts"], 30)
        assert [m.kind for m in matters] == ["return", "order"]
        assert matters[0].text == "the return you started on Tuesday for order 63950"
        assert [m.order_id for m in matters] == ["63950", "77310"]
        assert matters[1].text.startswith("your order 77310")
        assert open_matters(s, 2, NOW, ["orders"], 30)[0].kind == "order"
        assert open_matters(s, 2, NOW, ["orders", "returns"], 30)[0].kind == "order"
        assert open_matters(s, 2, NOW, ["returns", "orders"], 1) == []  # older than a day
        later = NOW + timedelta(days=20)
        assert "on February 17" not in open_matters(s, 2, later, ["return"], 30)[0].text
        assert open_matters(s, 2, later, ["return"], 30)[0].text.endswith("on March 10 for order 63950")
        with pytest.raises(ValueError):
            open_matters(s, 2, NOW, ["weather"], 30)


def test_an_unfinished_earlier_call_is_an_open_matter_and_a_resolved_one_is_not(db):
    with db.session() as s:
        done = open_contact(s, "sip", "+15551230001", NOW - timedelta(days=4), customer_id=1)
        close_contact(s, done, NOW - timedelta(days=4), "resolved", "asked about order", ["order_status"],
                      [], None, 0.1)
        hung_up = open_contact(s, "sip", "+15551230001", NOW - timedelta(days=3), customer_id=1)
        tasks = [{"intent": "order_status", "status": "done"}, {"intent": "return_item", "status": "active"}]
        close_contact(s, hung_up, NOW - timedelta(days=3), "abandoned", None, tasks, [], None, 0.6)
        ongoing = open_contact(s, "sip", "+15551230001", NOW, customer_id=1)
    with db.session() as s:
        matters = open_matters(s, 1, NOW, ["contacts"], 30)
        assert [m.id for m in matters] == [hung_up]
        assert matters[0].text == "your call on Monday about return item"
        phrased = open_matters(s, 1, NOW, ["contact"], 30, topics={"return_item": "the return"})
        assert phrased[0].text == "your call on Monday about the return"
        assert ongoing not in [m.id for m in matters]


def test_contact_is_recorded_from_open_to_close(db):
    with db.session() as s:
        cid = open_contact(s, "sip", "+1 (555) 123-0002", NOW, customer_id=2)
    with db.session() as s:
        close_contact(s, cid, NOW + timedelta(minutes=3), "resolved", "asked where order 77310 is",
                      ["order_status"], [{"speaker": "caller", "text": "where is my order"}],
                      {"queue": "general", "when": date(2026, 3, 12)}, 0.42)
    with db.session() as s:
        c = s.get(Contact, cid)
        assert (c.channel, c.caller_id, c.customer_id, c.outcome) == ("sip", "+15551230002", 2, "resolved")
        assert c.ended_at - c.started_at == timedelta(minutes=3)
        assert c.transcript == [{"speaker": "caller", "text": "where is my order"}]
        assert c.handoff == {"queue": "general", "when": "2026-03-12"}
        assert c.frustration_max == pytest.approx(0.42)
        with pytest.raises(LookupError):
            close_contact(s, 999999, NOW, "resolved", None, None, None, None, None)


def test_session_rolls_back_everything_on_error(db):
    before = count(db, Subscription)
    with pytest.raises(RuntimeError), db.session() as s:
        s.get(Subscription, 1).status = "cancelled"
        s.add(Subscription(customer_id=2, plan="x", monthly_price=Decimal("1"), status="active", started_at=NOW))
        s.flush()
        raise RuntimeError("boom")
    assert count(db, Subscription) == before
    with db.session() as s:
        assert s.get(Subscription, 1).status == "active"


def test_ensure_database_seeds_only_an_empty_database(db, tmp_path):
    customers = count(db, Customer)
    ensure_database(db.url, seed_demo=True, now=NOW).dispose()
    assert count(db, Customer) == customers
    empty = ensure_database(f"sqlite:///{tmp_path / 'empty.db'}", seed_demo=False, now=NOW)
    assert empty.has_tables() and empty.is_empty()
    empty.dispose()


def test_unusable_urls_raise_a_clear_error_naming_the_url(tmp_path):
    with pytest.raises(DatabaseError, match="nowhere"):
        Database(f"sqlite:///{tmp_path / 'nowhere' / 'x.db'}").check()
    with pytest.raises(DatabaseError, match="not a url"):
        Database("not a url")
    with pytest.raises(DatabaseError) as err:
        Database("nosuchdialect://user:hunter2@host/db")
    assert "hunter2" not in str(err.value) and "***" in str(err.value)


def test_spoken_forms():
    assert money(Decimal("12.99")) == "12 dollars 99"
    assert money(Decimal("5")) == "5 dollars"
    assert money(Decimal("0.99")) == "99 cents"
    assert money(Decimal("1.05")) == "1 dollar 05"
    now = datetime(2026, 3, 12, 15, 30)
    assert day_name(datetime(2026, 3, 10, 9), now) == "Tuesday"
    assert day_name(date(2026, 3, 13), now) == "tomorrow"
    assert on_day(date(2026, 3, 12), now) == "today"
    assert on_day(date(2026, 2, 1), now) == "on February 1"
    assert day_name(date(2025, 12, 24), now) == "December 24, 2025"
