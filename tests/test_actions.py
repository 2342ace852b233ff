"""dialogs.actions: every retail action against a real SQLite copy of the demo data, with its audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from demo_db import NOW, demo_copy
from sqlalchemy import func, select

from dialogs.actions import ACTIONS, ActionContext, ActionResult
from dialogs.db.engine import Database
from dialogs.db.models import AuditLog, Customer, Invoice, Order, Return, Subscription
from dialogs.db.spoken import money

JANE, JOHN = 1, 2


@pytest.fixture()
def db(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(demo_copy(tmp_path, tmp_path_factory))
    yield database
    database.dispose()


def run(db: Database, name: str, customer_id: int | None, contact_id: int | None = None, **slots: Any) -> ActionResult:
    with db.session() as s:
        return ACTIONS[name](ActionContext(session=s, slots=slots, customer_id=customer_id,
                                           contact_id=contact_id, now=NOW))


def audit(db: Database) -> list[AuditLog]:
    with db.session() as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.actor == "bot").order_by(AuditLog.id)))


def test_every_retail_action_is_registered():
    assert {"lookup_order", "start_return", "change_address", "reset_password", "billing_summary",
            "refund_duplicate_charge", "cancel_subscription"} <= set(ACTIONS)


def test_lookup_order_speaks_status_tracking_and_eta(db):
    result = run(db, "lookup_order", JANE, order_id="45281")
    assert result.outcome == "ok" and not result.changed
    d = result.data
    assert (d["order_id"], d["status"], d["carrier"], d["tracking"]) == ("45281", "shipped", "UPS", "1Z999AA10123454812")
    # NOW is Thursday 12 March: shipped Tuesday, due two days later.
    assert d["status_text"] == "shipped with UPS on Tuesday, tracking ends in 4 8 1 2, expected Saturday"
    assert d["eta"] == "Saturday"
    assert run(db, "lookup_order", JANE, order_id="4 5 2 8 1").outcome == "ok"
    assert run(db, "lookup_order", JANE, order_id="12034").data["status_text"] == "delivered on Saturday"
    assert run(db, "lookup_order", JOHN, order_id="77310").data["status_text"].startswith("being prepared")
    assert audit(db) == []


@pytest.mark.parametrize("order_id", ["99999", "123", "", None, "forty two"])
def test_lookup_of_an_unknown_order_is_not_found_and_reasks_the_slot(db, order_id):
    result = run(db, "lookup_order", JANE, order_id=order_id)
    assert result.outcome == "not_found" and result.invalid_slot == "order_id"
    assert "order_id_spoken" in result.data


def test_someone_elses_order_or_an_unverified_caller_is_not_allowed(db):
    other = run(db, "lookup_order", JANE, order_id="77310")  # John's
    assert other.outcome == "not_allowed" and "status" not in other.data
    for name in ("lookup_order", "start_return", "change_address", "reset_password", "billing_summary",
                 "refund_duplicate_charge", "cancel_subscription"):
        assert run(db, name, None, order_id="45281", address="1 Main Street").outcome == "not_allowed", name
    assert run(db, "start_return", JOHN, order_id="12034").outcome == "not_allowed"
    assert audit(db) == []


def test_start_return_on_a_recent_delivery_creates_it_with_an_audit_row(db):
    result = run(db, "start_return", JANE, contact_id=77, order_id="12034", return_reason="too small")
    assert result.outcome == "ok" and result.changed
    assert result.data["email_masked"] == "j***@example.com"
    assert result.data["rma_spoken"].replace(" ", "") == result.data["rma"]
    with db.session() as s:
        ret = s.scalar(select(Return).join(Order).where(Order.number == "12034"))
        assert (ret.rma, ret.reason, ret.status, ret.customer_id) == (result.data["rma"], "too small", "label_sent", JANE)
    [row] = audit(db)
    assert (row.entity, row.entity_id, row.action, row.contact_id, row.customer_id) == ("return", ret.id, "create", 77, JANE)
    again = run(db, "start_return", JANE, order_id="12034")
    assert again.outcome == "already_done" and again.data["rma"] == result.data["rma"]
    assert again.data["return_status"] == "label sent"
    assert len(audit(db)) == 1


def test_a_return_is_refused_before_delivery_and_after_the_window(db):
    early = run(db, "start_return", JANE, order_id="45281")
    assert early.outcome == "not_eligible" and "not been delivered" in early.data["why"]
    with db.session() as s:
        s.scalar(select(Order).where(Order.number == "12034")).delivered_at = NOW - timedelta(days=31)
    late = run(db, "start_return", JANE, order_id="12034")
    assert late.outcome == "not_eligible" and "30 days" in late.data["why"]
    assert run(db, "start_return", JOHN, order_id="63950").outcome == "already_done"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Return).where(Return.customer_id == JANE)) == 0
    assert audit(db) == []


def test_change_address_updates_the_customer_and_audits_before_and_after(db):
    result = run(db, "change_address", JANE, address="12 Main Street, Springfield, IL 62701")
    assert result.outcome == "ok" and result.changed
    assert result.data["address"] == "12 Main Street, Springfield, Illinois, 6 2 7 0 1"
    with db.session() as s:
        jane = s.get(Customer, JANE)
        assert (jane.address_line, jane.city, jane.state, jane.postcode) == ("12 Main Street", "Springfield", "IL", "62701")
    [row] = audit(db)
    assert row.before == {"address_line": "185 Berry Street", "city": "San Francisco", "state": None,
                          "postcode": "94107"}
    assert row.after["address_line"] == "12 Main Street"
    street_only = run(db, "change_address", JANE, address="14 Main Street")
    assert street_only.data["address"] == "14 Main Street, Springfield, Illinois, 6 2 7 0 1"
    same = run(db, "change_address", JANE, address="14 Main Street, Springfield", postcode="62701")
    assert same.outcome == "ok" and not same.changed and len(audit(db)) == 2


@pytest.mark.parametrize(("slots", "bad_slot"), [
    ({"address": "somewhere nice"}, "address"), ({"address": ""}, "address"), ({}, "address"),
    ({"address": {"city": "Boston"}}, "address"), ({"address": "12 Main Street", "postcode": "!!"}, "postcode"),
    ({"address": "12 Main Street", "postcode": "ABCDEF"}, "postcode"),
    ({"address": "12 Main Street, Boston"}, "postcode"),
])
def test_an_unusable_address_changes_nothing(db, slots, bad_slot):
    result = run(db, "change_address", JANE, **slots)
    assert result.outcome == "invalid" and result.invalid_slot == bad_slot and not result.changed
    with db.session() as s:
        assert s.get(Customer, JANE).address_line == "185 Berry Street"
    assert audit(db) == []


def test_reset_password_masks_the_email_and_records_the_reset(db):
    result = run(db, "reset_password", JANE)
    assert (result.outcome, result.data["email_masked"]) == ("ok", "j***@example.com")
    [row] = audit(db)
    assert (row.entity, row.action, row.customer_id) == ("customer", "password_reset", JANE)
    assert "jane.doe" not in repr(row.after)


def test_billing_summary_finds_the_double_charge_and_refund_fixes_it(db):
    summary = run(db, "billing_summary", JANE)
    assert summary.outcome == "ok" and summary.data["duplicate"] is True
    with db.session() as s:  # the latest charge is the parcel still on its way, placed on Monday
        total = s.scalar(select(Order.total).where(Order.number == "45281"))
    assert summary.data["last_amount"] == money(total) and summary.data["last_date"] == "March 9"
    assert summary.data["duplicate_text"] == (
        "You were charged 12 dollars 99 twice in March for your Premium monthly subscription.")
    refund = run(db, "refund_duplicate_charge", JANE, contact_id=5)
    assert refund.outcome == "ok" and refund.data["refund_amount"] == "12 dollars 99"
    with db.session() as s:
        march = s.scalars(select(Invoice).where(Invoice.customer_id == JANE, Invoice.subscription_id.is_not(None),
                                                Invoice.issued_at >= NOW.replace(day=1, hour=0, minute=0)))
        assert sorted(i.status for i in march) == ["paid", "refunded"]
    [row] = audit(db)
    assert (row.entity, row.action, row.before, row.after["status"]) == ("invoice", "refund", {"status": "paid"}, "refunded")
    assert run(db, "refund_duplicate_charge", JANE).outcome == "not_found"
    assert run(db, "billing_summary", JANE).data["duplicate"] is False
    assert len(audit(db)) == 1


def test_billing_without_double_charge(db):
    summary = run(db, "billing_summary", JOHN)
    assert summary.outcome == "ok" and summary.data["duplicate"] is False and summary.data["duplicate_text"] == ""
    assert summary.data["balance_due"] == "0 cents"
    assert run(db, "refund_duplicate_charge", JOHN).outcome == "not_found"


def test_cancel_subscription_keeps_access_to_the_end_of_the_paid_month(db):
    result = run(db, "cancel_subscription", JANE)
    assert (result.outcome, result.data["plan"], result.data["end_date"]) == ("ok", "Premium monthly", "April 1")
    with db.session() as s:
        sub = s.scalar(select(Subscription).where(Subscription.customer_id == JANE))
        assert (sub.status, sub.cancelled_at) == ("cancelled", NOW)
    assert run(db, "cancel_subscription", JANE).outcome == "already_done"
    assert run(db, "cancel_subscription", JOHN).outcome == "not_found"
    assert [r.action for r in audit(db)] == ["cancel"]


def test_an_action_and_its_audit_row_roll_back_together(db):
    with pytest.raises(RuntimeError), db.session() as s:
        result = ACTIONS["cancel_subscription"](ActionContext(s, {}, JANE, None, NOW))
        assert result.outcome == "ok"
        raise RuntimeError("the caller hung up before the confirmation was stored")
    with db.session() as s:
        assert s.scalar(select(Subscription.status).where(Subscription.customer_id == JANE)) == "active"
    assert audit(db) == []


@pytest.mark.parametrize("value", [None, "", ["45281"], {"x": 1}, True, 3.5, "x" * 5000, "\x00"])
def test_garbage_slot_values_never_raise_or_change_anything(db, value):
    for name in ("lookup_order", "start_return", "change_address"):
        slots = {"order_id": value, "return_reason": value, "address": value, "postcode": value}
        result = run(db, name, JANE, **slots)
        assert result.outcome in ("not_found", "invalid") and not result.changed, (name, result)
    assert audit(db) == []
