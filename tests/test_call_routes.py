"""Per-number routes (a trunk's DID settings) and the dialled number in call records."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from dialogs.db.engine import ensure_database
from dialogs.domain import load_domain
from dialogs.engine import DialogEngine, EngineOptions, Turn
from dialogs.nlu import NLU
from voicebot.config import Settings
from voicebot.storage import CallStore
from voicebot.storage.schema import upgrade
from voicebot.validation import check_settings

NOW = datetime(2026, 11, 20, 10, 30)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> DialogEngine:
    domain = load_domain()
    db = ensure_database(f"sqlite:///{tmp_path_factory.mktemp('routes') / 'bot.db'}", seed_demo=True, now=NOW)
    return DialogEngine(domain, NLU.train(domain), db, EngineOptions(), clock=lambda: NOW, seed=5)


def test_a_billing_hotline_greets_its_own_way_and_starts_the_billing_flow(engine):
    session = engine.new_call(
        channel="sip", caller_id="+15551230001", dialled="+18005550100",
        greeting="Acme billing line, automated assistant speaking.", start_intent="billing_question",
    )
    reply = session.start()
    assert reply.text.startswith("Acme billing line")
    assert "postcode" in reply.text.lower()  # billing needs verification first
    reply = session.handle(Turn(dtmf="4321"))
    assert "last charge" in reply.text.lower()


def test_unknown_route_flow_is_refused(engine):
    with pytest.raises(ValueError, match="not an intent"):
        engine.new_call(channel="sip", start_intent="no_such_intent")


def test_config_check_reports_bad_routes():
    settings = Settings(trunks=[{
        "name": "carrier", "host": "sip.example.com",
        "dids": {"+18005550100": {"flow": "biling_question"}, "+18005550101": {"language": "de"}},
    }])
    keys = {k for k, _ in check_settings(settings)}
    assert "trunks.0.dids.+18005550100.flow" in keys
    assert "trunks.0.dids.+18005550101.language" in keys


def test_call_store_upgrades_an_older_database_and_keeps_its_rows(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = create_engine(url)
    with old.begin() as conn:  # the table as the first version made it, without `dialled`
        conn.execute(text(
            "CREATE TABLE voicebot_calls (id VARCHAR(64) PRIMARY KEY, channel VARCHAR(16), caller_id VARCHAR(128),"
            " start DATETIME, \"end\" DATETIME, outcome VARCHAR(32), end_reason VARCHAR(32))"
        ))
        conn.execute(text("INSERT INTO voicebot_calls (id, channel, start) VALUES ('old-1', 'webrtc', '2026-01-01')"))
    upgrade(url)  # as `voicebot serve` or `voicebot db upgrade` does
    store = CallStore(create_engine(url))
    store.open_call("new-1", "sip", "+15551230001", dialled="+18005550100")
    calls = {c["id"]: c for c in store.list()}
    assert calls["old-1"]["dialled"] is None
    assert calls["new-1"]["dialled"] == "+18005550100"
    store.close()
