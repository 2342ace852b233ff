"""Call records: turns in order, closing is idempotent, records survive a restart, stale calls closed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from voicebot.storage import CallStore


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'calls.db'}"


def test_a_call_with_turns_survives_a_restart(url):
    store = CallStore.from_url(url)
    store.open_call("c1", "webrtc", "+4930123")
    t0 = datetime.now(UTC)
    store.add_turn("c1", "bot", "Hello, automated assistant here.", t0)
    turn = store.add_turn("c1", "caller", "where is my order", t0, intents=[{"name": "order_status"}])
    store.update_turn(turn, extra={"stages": {"stt_ms": 400}})
    store.update_turn(turn, latency_ms=700.0, extra={"interrupted": True})
    store.close_call("c1", outcome="resolved", reason="caller_hangup")
    store.close()

    again = CallStore.from_url(url)
    record = again.get("c1")
    assert record is not None
    assert record["channel"] == "webrtc" and record["caller_id"] == "+4930123"
    assert record["outcome"] == "resolved" and record["end"] is not None
    assert [t["speaker"] for t in record["turns"]] == ["bot", "caller"]
    caller = record["turns"][1]
    assert caller["intents"] == [{"name": "order_status"}]
    assert caller["latency_ms"] == 700.0
    assert caller["extra"] == {"stages": {"stt_ms": 400}, "interrupted": True}
    assert caller["end"] is not None  # open turns are closed with the call
    assert [c["id"] for c in again.list()] == ["c1"]


def test_closing_twice_keeps_the_first_outcome(url):
    store = CallStore.from_url(url)
    store.open_call("c2", "sip", None)
    store.close_call("c2", outcome="handoff", reason="handoff")
    store.close_call("c2", outcome="abandoned", reason="caller_hangup")
    assert store.get("c2")["outcome"] == "handoff"


def test_calls_left_open_by_a_crash_are_closed_as_interrupted(url):
    store = CallStore.from_url(url)
    store.open_call("open", "webrtc", None)
    store.open_call("done", "webrtc", None)
    store.close_call("done", outcome="resolved", reason="bot_hangup")
    assert CallStore.from_url(url).close_stale() == 1
    record = store.get("open")
    assert record["outcome"] == "interrupted" and record["end_reason"] == "server_restart"


def test_unknown_speaker_is_refused(url):
    store = CallStore.from_url(url)
    store.open_call("c3", "webrtc", None)
    with pytest.raises(ValueError, match="speaker"):
        store.add_turn("c3", "supervisor", "hi", datetime.now(UTC))


def test_unknown_call_is_none(url):
    assert CallStore.from_url(url).get("nope") is None
