"""The same database code on PostgreSQL: the ``postgres_url`` fixture (tests/conftest.py), a server the test run
starts or VOICEBOT_TEST_POSTGRES_URL naming a throwaway database (its voicebot tables are dropped), e.g.
postgresql+psycopg://postgres@/postgres?host=/tmp&port=55432 with ``pip install -e ".[postgres]"``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from demo_db import NOW
from sqlalchemy import select

from dialogs.actions import ACTIONS, ActionContext
from dialogs.db.engine import Database, ensure_database
from dialogs.db.models import AuditLog, Customer
from dialogs.db.repository import find_customer_by_phone, open_matters, verify_identity
from dialogs.privacy import delete_customer, export_customer


@pytest.fixture()
def pg(postgres_url: str) -> Iterator[Database]:
    Database(postgres_url).drop_all()
    db = ensure_database(postgres_url, seed_demo=True, now=NOW)
    yield db
    db.drop_all()
    db.dispose()


def test_demo_actions_and_erasure_on_postgresql(pg):
    with pg.session() as s:
        jane = find_customer_by_phone(s, "555 123 0001")
        assert jane is not None and verify_identity(s, jane.id, "pin", "4321")
        assert open_matters(s, 2, NOW, ["returns"], 30)[0].text.startswith("the return you started on Tuesday")
    outcomes = {}
    for name, slots in [("lookup_order", {"order_id": "45281"}), ("start_return", {"order_id": "12034"}),
                        ("change_address", {"address": "1 Main Street"}), ("billing_summary", {}),
                        ("refund_duplicate_charge", {}), ("cancel_subscription", {})]:
        with pg.session() as s:
            outcomes[name] = ACTIONS[name](ActionContext(s, slots, 1, None, NOW)).outcome
    assert set(outcomes.values()) == {"ok"}, outcomes
    with pg.session() as s:
        assert [a["action"] for a in export_customer(s, 1)["audit"]] == ["create", "change_address", "refund", "cancel"]
        json.dumps(export_customer(s, 1))
        delete_customer(s, 1, NOW)
    with pg.session() as s:
        assert s.get(Customer, 1) is None
        assert s.scalar(select(AuditLog).where(AuditLog.action == "erase")) is not None
