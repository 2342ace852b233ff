"""dialogs.privacy: the right of access (export), the right to erasure (delete), retention (purge)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from demo_db import NOW, demo_copy
from sqlalchemy import func, select

from dialogs.actions import ACTIONS, ActionContext
from dialogs.db.engine import Database
from dialogs.db.models import AuditLog, Contact, Customer, Invoice, Order, Subscription, VerificationAttempt
from dialogs.db.repository import close_contact, find_customer_by_phone, open_contact, verify_identity
from dialogs.privacy import UnknownCustomer, delete_customer, export_customer, purge_contacts

JANE = 1
SECRET_WORDS = "my card ends in 7777 and I live at 185 Berry Street"


@pytest.fixture()
def db(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(demo_copy(tmp_path, tmp_path_factory))
    with database.session() as s:  # a call with a transcript, and an address change in the audit log
        cid = open_contact(s, "sip", "+15551230001", NOW - timedelta(days=1), customer_id=JANE)
        close_contact(s, cid, NOW - timedelta(days=1), "handoff", "questioned a charge", ["billing_question"],
                      [{"speaker": "caller", "text": SECRET_WORDS}], {"queue": "billing", "summary": "Jane Doe"}, 0.7)
        open_contact(s, "webrtc", "+15551230001", NOW - timedelta(days=2))  # not yet linked to Jane
        verify_identity(s, JANE, "pin", "4321", now=NOW - timedelta(days=1), contact_id=cid)
        ACTIONS["change_address"](ActionContext(s, {"address": "9 Quiet Lane, Oakland, 94601"}, JANE, cid, NOW))
    yield database
    database.dispose()


def test_export_holds_everything_stored_about_the_customer(db):
    with db.session() as s:
        data = export_customer(s, JANE)
    text = json.dumps(data)  # must be JSON-able as it is
    assert data["customer"]["email"] == "jane.doe@example.com" and data["customer"]["address_line"] == "9 Quiet Lane"
    assert data["customer"]["pin"] == "stored as a salted hash" and "scrypt" not in text
    assert {o["number"] for o in data["orders"]} == {"45281", "12034"}
    assert all(o["items"] for o in data["orders"])
    assert len(data["invoices"]) >= 10 and data["subscriptions"][0]["plan"] == "Premium monthly"
    assert len(data["contacts"]) == 2 and data["contacts"][1]["transcript"][0]["text"] == SECRET_WORDS
    assert [a["action"] for a in data["audit"]] == ["change_address"]
    assert data["audit"][0]["before"]["address_line"] == "185 Berry Street"
    assert [(v["method"], v["success"]) for v in data["verification_attempts"]] == [("pin", True)]
    with db.session() as s, pytest.raises(UnknownCustomer):
        export_customer(s, 99999)


def test_delete_erases_the_person_and_keeps_anonymised_accounting_records(db, tmp_path):
    with db.session() as s:
        invoices = s.scalar(select(func.count()).select_from(Invoice))
        erasure = delete_customer(s, JANE, NOW)
    assert erasure.orders_anonymised == 2 and erasure.contacts_erased == 2 and erasure.audit_rows_redacted == 1
    with db.session() as s:
        assert s.get(Customer, JANE) is None
        assert s.scalar(select(func.count()).select_from(VerificationAttempt)) == 0
        assert find_customer_by_phone(s, "+15551230001") is None
        order = s.scalar(select(Order).where(Order.number == "45281"))
        assert order.customer_id is None and order.items  # kept for accounting, without the person
        assert s.scalar(select(func.count()).select_from(Invoice)) == invoices
        assert s.scalar(select(Subscription).where(Subscription.plan == "Premium monthly",
                                                   Subscription.customer_id.is_(None))) is not None
        contact = s.scalar(select(Contact).where(Contact.outcome == "handoff", Contact.started_at >= NOW - timedelta(days=2)))
        assert (contact.caller_id, contact.transcript, contact.summary, contact.handoff, contact.customer_id) == (
            None, None, None, None, None)
        assert contact.intents == ["billing_question"]  # statistics stay
        erase = s.scalar(select(AuditLog).where(AuditLog.action == "erase"))
        assert erase.customer_id == JANE and erase.after["orders_anonymised"] == 2
    db.dispose()
    raw = Path(db.url.removeprefix("sqlite:///")).read_bytes()
    # secure_delete: the erased values are not left behind in free pages of the file either.
    for personal in (b"jane.doe@example.com", b"+15551230001", b"Berry Street", b"Quiet Lane", b"7777", b"Jane Doe"):
        assert personal not in raw, personal


def test_delete_of_an_unknown_customer_changes_nothing(db):
    with db.session() as s, pytest.raises(UnknownCustomer):
        delete_customer(s, 99999, NOW)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "erase")) == 0


def test_purge_blanks_only_contacts_older_than_the_retention(db):
    with db.session() as s:
        old = open_contact(s, "sip", "+15551230002", NOW - timedelta(days=400), customer_id=2)
        close_contact(s, old, NOW - timedelta(days=400), "resolved", "old call", ["order_status"],
                      [{"speaker": "caller", "text": "hello"}], None, 0.1)
    with db.session() as s:
        assert purge_contacts(s, NOW, 365) == 1
    with db.session() as s:
        purged = s.get(Contact, old)
        assert (purged.caller_id, purged.transcript, purged.summary) == (None, None, None)
        assert purged.outcome == "resolved" and purged.customer_id == 2
        recent = s.scalar(select(Contact).where(Contact.customer_id == JANE))
        assert recent.transcript[0]["text"] == SECRET_WORDS
        assert s.scalar(select(AuditLog).where(AuditLog.action == "purge")).after["contacts"] == 1
        assert purge_contacts(s, NOW, 365) == 0
        with pytest.raises(ValueError):
            purge_contacts(s, NOW, 0)
