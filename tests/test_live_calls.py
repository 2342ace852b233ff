"""The live-calls registry: summaries folded from a sequence of bus events, and the alert rules."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from voicebot.config import SupervisorConfig
from voicebot.events import EventBus
from voicebot.live import LiveCalls
from voicebot.storage import CallStore


def run(events, config: SupervisorConfig | None = None, clock=None, then=None):
    """Publish ``events`` ((type, data) pairs) on a bound bus with a registry attached; returns
    (registry, every event a subscriber received, in order). ``then(registry)`` runs after them."""

    async def main():
        bus = EventBus()
        bus.bind()
        live = LiveCalls(bus, config, clock=clock or (lambda: 0.0))
        live.attach()
        sub = bus.subscribe()
        for type_, data in events:
            bus.publish(type_, **data)
        if then is not None:
            then(live)
        await asyncio.sleep(0)  # the registry publishes its own events just after the one that caused them
        await asyncio.sleep(0)
        got = []
        while not sub._queue.empty():
            got.append(sub._queue.get_nowait())
        return live, got

    return asyncio.run(main())


def started(call_id="c1", channel="sip", caller_id="+15550100"):
    return ("call.started", {"call_id": call_id, "call": {
        "id": call_id, "channel": channel, "caller_id": caller_id, "dialled": "800", "start": "2026-11-22T08:00:00+00:00"}})


def caller_turn(call_id="c1", intents=(), level=None, score=0.0, trend="steady", why=None):
    extra = {}
    if level is not None:
        extra["signals"] = {"frustration": score, "frustration_level": level, "frustration_trend": trend,
                            "frustration_explanation": why}
    return ("turn", {"call_id": call_id, "turn": {
        "id": 1, "seq": 1, "speaker": "caller", "text": "hi", "start": None, "end": None,
        "intents": [{"name": n, "confidence": 0.9, "slots": {}} for n in intents], "latency_ms": None,
        "extra": extra}})


def bot_turn(call_id="c1", customer=None, turn_id=2):
    extra = {"kind": "reply", "trace": {"steps": []}}
    if customer:
        extra["customer"] = customer
    return ("turn", {"call_id": call_id, "turn": {
        "id": turn_id, "seq": 2, "speaker": "bot", "text": "ok", "start": None, "end": None, "intents": [],
        "latency_ms": None, "extra": extra}})


def of_type(events, type_):
    return [e for e in events if e["type"] == type_]


def test_a_call_is_summarised_from_its_events():
    live, got = run([
        started(),
        caller_turn(intents=["greet", "order_status", "change_address"], level="annoyed", score=0.45, trend="rising",
                    why="louder than at the start"),
        bot_turn(customer="Jane Doe"),
        ("turn.updated", {"call_id": "c1", "turn_id": 2, "fields": {"latency_ms": 712.34}}),
        caller_turn(intents=["order_status", "refund_status"], level="calm", score=0.1),
    ])
    call = live.get("c1").as_dict()
    assert call["channel"] == "sip" and call["caller_id"] == "+15550100" and call["dialled"] == "800"
    assert call["state"] == "bot" and call["turns"] == 3
    assert call["intents"] == ["order_status", "change_address", "refund_status"]
    assert call["frustration"] == {"score": 0.1, "level": "calm", "trend": "steady", "explanation": None}
    assert call["last_latency_ms"] == 712.3
    assert call["customer"] == "Jane Doe"
    # One call.updated per change, each after the event that caused it and carrying the summary of then.
    updates = of_type(got, "call.updated")
    assert len(updates) == 5
    assert updates[-1]["call"] == call
    types = [e["type"] for e in got]
    assert types.index("call.started") < types.index("call.updated")
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)


def test_state_queue_agent_and_end():
    packet = {"summary": "Caller Jane Doe, verified.", "customer": {"name": "Jane Doe", "verified": True}}
    live, got = run([
        started(),
        ("handoff", {"call_id": "c1", "packet": packet, "customer": "Jane Doe"}),
        ("call.state", {"call_id": "c1", "state": "queued", "queue": "general"}),
        ("call.state", {"call_id": "c1", "state": "agent", "agent_id": "alice"}),
    ])
    call = live.get("c1")
    assert (call.state, call.queue, call.agent_id, call.customer) == ("agent", "general", "alice", "Jane Doe")
    assert call.handoff == packet
    assert [u["call"]["state"] for u in of_type(got, "call.updated")] == ["bot", "bot", "queued", "agent"]

    live, _ = run([started(), ("call.state", {"call_id": "c1", "state": "agent", "agent_id": "bob"}),
                   ("call.ended", {"call_id": "c1", "outcome": "handoff", "end_reason": "handoff", "end": None})])
    assert live.get("c1") is None and live.snapshot() == []
    assert live.agent_of("c1") == "bob"  # still known, so the agent's dashboard gets the call's last events


def test_events_of_unknown_calls_and_unknown_states_change_nothing():
    live, got = run([
        caller_turn(call_id="other", intents=["refund_status"]),
        started(),
        ("call.state", {"call_id": "c1", "state": "on_the_moon"}),
    ])
    assert [c["id"] for c in live.snapshot()] == ["c1"]
    assert live.get("c1").state == "bot"
    assert len(of_type(got, "call.updated")) == 1


def test_frustration_alert_once_per_crossing_of_the_configured_level():
    live, got = run([
        started(),
        caller_turn(level="annoyed", score=0.5),
        caller_turn(level="frustrated", score=0.8, why="third time; louder"),
        caller_turn(level="frustrated", score=0.85),
        caller_turn(level="calm", score=0.2),
        caller_turn(level="frustrated", score=0.75),
    ])
    alerts = of_type(got, "alert")
    assert [a["kind"] for a in alerts] == ["frustration", "frustration"]
    assert alerts[0]["call_id"] == "c1" and alerts[0]["level"] == "frustrated"
    assert "third time; louder" in alerts[0]["message"]

    _, got = run([started(), caller_turn(level="annoyed", score=0.5)],
                 config=SupervisorConfig(alert_frustration="annoyed"))
    assert [a["level"] for a in of_type(got, "alert")] == ["annoyed"]
    _, got = run([started(), caller_turn(level="annoyed", score=0.5)])
    assert of_type(got, "alert") == []


def test_wait_alert_when_a_queued_caller_waits_too_long():
    checked = []

    def then(live):
        queued_at = live.get("c1").queued_at  # the queued event's own time stamp
        checked.append(live.check_waits(now=queued_at + 59))
        checked.append(live.check_waits(now=queued_at + 61))
        checked.append(live.check_waits(now=queued_at + 62))  # alerted once, not every second

    queued = ("call.state", {"call_id": "c1", "state": "queued", "queue": "general"})
    _, got = run([started(), queued], config=SupervisorConfig(alert_wait_s=60), then=then)
    assert checked == [0, 1, 0]
    [alert] = of_type(got, "alert")
    assert alert["kind"] == "wait" and alert["queue"] == "general" and alert["call_id"] == "c1"
    assert alert["waited_s"] == 61.0


def test_wait_counts_from_the_queued_event_and_stops_with_an_agent():
    def then(live):
        call = live.get("c1")
        call.queued_at = 0.0  # as if queued long ago
        assert live.check_waits(now=30.0) == 0  # with an agent: no wait alert, however long ago

    _, got = run([started(), ("call.state", {"call_id": "c1", "state": "queued", "queue": "general"}),
                  ("call.state", {"call_id": "c1", "state": "agent", "agent_id": "alice"})],
                 config=SupervisorConfig(alert_wait_s=10), then=then)
    assert of_type(got, "alert") == []


def test_queue_snapshots_are_kept_for_the_hello_message():
    queues = [{"name": "general", "waiting": [], "agents": [], "stats": {}}]
    agents = [{"id": "alice", "state": "available"}]
    live, _ = run([("queue", {"queues": {"queues": queues}, "agents": agents})])
    assert live.queues == queues and live.agents == agents


def test_call_store_writes_reach_the_registry_and_the_call_row(tmp_path):
    """The real publisher: the call store's events, from its writer thread, after each commit."""

    async def main():
        bus = EventBus()
        bus.bind()
        store = CallStore.from_url(f"sqlite:///{tmp_path / 'calls.db'}")
        store.events = bus
        live = LiveCalls(bus)
        live.attach()
        await store.arun("open_call", "c9", "webrtc", None)
        now = datetime.now(UTC)
        await store.arun("add_turn", "c9", "caller", "where is my order", now, end=now,
                         intents=[{"name": "order_status"}],
                         extra={"signals": {"frustration": 0.42, "frustration_level": "annoyed"}})
        bot = await store.arun("add_turn", "c9", "bot", "Which order?", now)
        await store.arun("update_turn", bot, latency_ms=640.0)
        bus.publish("call.state", call_id="c9", state="agent", agent_id="alice")
        for _ in range(3):
            await asyncio.sleep(0)
        summary = live.get("c9").as_dict()
        await store.arun("close_call", "c9", "handoff", "handoff")
        await asyncio.sleep(0)
        record = store.get("c9")
        store.close()
        return summary, live, record

    summary, live, record = asyncio.run(main())
    assert summary["intents"] == ["order_status"] and summary["turns"] == 2
    assert summary["last_latency_ms"] == 640.0 and summary["frustration"]["level"] == "annoyed"
    assert live.get("c9") is None
    assert record["intents"] == ["order_status"] and record["frustration_max"] == 0.42
    assert live.agent_of("c9") == "alice"


def test_a_call_taken_over_by_a_supervisor_says_who_has_it():
    live, got = run([started(), ("call.taken_over", {"call_id": "c1", "by": "sue", "at": "2026-11-22T08:01:00+00:00"})])
    assert live.get("c1").as_dict()["state"] == "supervisor"
    assert of_type(got, "call.updated")[-1]["call"]["taken_over_by"] == "sue"


def test_the_handoff_event_names_the_customer_in_its_own_field(tmp_path):
    """The registry takes the customer's name from the ``handoff`` event's typed field (``customer``), published
    with the packet by the call; it never digs into the packet's dict."""
    from sqlalchemy import create_engine

    from dialogs.manager.handoff import HandoffPacket
    from voicebot.pipeline.call import CallContext
    from voicebot.storage.schema import upgrade

    url = f"sqlite:///{tmp_path / 'voicebot.db'}"
    upgrade(url)
    packet = HandoffPacket.from_dict({"summary": "Caller Jane Doe, verified.", "reason": "caller_request",
                                      "queue": "general", "call_id": "c1",
                                      "customer": {"id": 1, "name": "Jane Doe", "verified": True}})

    async def main():
        bus = EventBus()
        bus.bind()
        live = LiveCalls(bus, None, clock=lambda: 0.0)
        live.attach()
        sub = bus.subscribe()
        store = CallStore(create_engine(url), bus)
        bus.publish(*started()[:1], **started()[1])
        CallContext("c1", "sip", "+15550100", session=None, store=store, shared=None).publish_handoff(packet)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        events = []
        while not sub._queue.empty():
            events.append(sub._queue.get_nowait())
        store.close()
        return live, events

    live, events = asyncio.run(main())
    handoff = of_type(events, "handoff")[0]
    assert handoff["customer"] == "Jane Doe"
    assert live.get("c1").customer == "Jane Doe"
