"""History search at the store: the per-call summary columns, and a database from before they existed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from dialogs.manager.state import ACTS
from voicebot.storage import CallStore
from voicebot.storage.calls import DIALOGUE_ACTS
from voicebot.storage.schema import upgrade


def test_summary_columns_follow_the_caller_turns(tmp_path) -> None:
    store = CallStore.from_url(f"sqlite:///{tmp_path / 'calls.db'}")
    now = datetime.now(UTC)
    store.open_call("c1", "sip", "+15550100")
    store.add_turn("c1", "caller", "hi, order and refund", now,
                   intents=[{"name": "greet"}, {"name": "order_status"}, {"name": "refund_status"}],
                   extra={"signals": {"frustration": 0.3}})
    store.add_turn("c1", "bot", "ok", now, intents=[{"name": "not_a_caller_intent"}])
    store.add_turn("c1", "caller", "the order again", now, intents=[{"name": "order_status"}],
                   extra={"signals": {"frustration": 0.6}})
    store.add_turn("c1", "caller", "calmer now", now, extra={"signals": {"frustration": 0.2}})
    [row], total = store.search()
    assert total == 1
    # caller intents, once each, in order of first mention; no dialogue acts such as greet
    assert row["intents"] == ["order_status", "refund_status"]
    assert row["frustration_max"] == 0.6
    store.set_agent("c1", "alice")
    assert store.search(agent_id="alice")[1] == 1 and store.search(agent_id="bob")[1] == 0
    assert store.search(agent_id="bob", agent_calls={"c1"})[1] == 1
    assert store.search(q="50%")[1] == 0 and store.search(q="order_")[1] == 0  # LIKE wildcards are literal
    store.close()


def test_calls_recorded_before_the_summary_columns_are_found(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:  # the tables as the previous version made them, with one call
        conn.execute(text(
            "CREATE TABLE voicebot_calls (id VARCHAR(64) PRIMARY KEY, channel VARCHAR(16), caller_id VARCHAR(128), "
            "dialled VARCHAR(128), start DATETIME, \"end\" DATETIME, outcome VARCHAR(32), end_reason VARCHAR(32))"))
        conn.execute(text(
            "CREATE TABLE voicebot_call_turns (id INTEGER PRIMARY KEY AUTOINCREMENT, call_id VARCHAR(64), seq INTEGER, "
            "speaker VARCHAR(8), text TEXT, start DATETIME, \"end\" DATETIME, intents JSON, latency_ms FLOAT, "
            "extra JSON)"))
        conn.execute(text("INSERT INTO voicebot_calls VALUES ('old', 'sip', '+15550199', NULL, "
                          "'2026-01-05 10:00:00', '2026-01-05 10:03:00', 'resolved', 'bot_hangup')"))
        conn.execute(text(
            "INSERT INTO voicebot_call_turns (call_id, seq, speaker, text, start, intents, extra) VALUES "
            "('old', 0, 'caller', 'cancel it', '2026-01-05 10:00:05', '[{\"name\": \"cancel_subscription\"}]', "
            "'{\"signals\": {\"frustration\": 0.71}}')"))
    upgrade(engine)  # as `voicebot serve` or `voicebot db upgrade` does
    store = CallStore(engine)
    [row], _ = store.search(intent="cancel_subscription")
    assert row["id"] == "old" and row["frustration_max"] == 0.71 and row["duration_s"] == 180.0
    assert store.search(min_frustration=0.7)[1] == 1
    store.close()


def test_the_dialogue_acts_left_out_are_the_dialog_managers() -> None:
    assert ACTS - {"out_of_scope"} == DIALOGUE_ACTS
