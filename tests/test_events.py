"""The event bus and the call store's events: what the dashboard and /ws/events are built on."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

from voicebot.events import EventBus
from voicebot.storage import CallStore


def test_events_reach_subscribers_in_order_from_other_threads() -> None:
    async def main() -> list[dict]:
        bus = EventBus()
        bus.bind()
        sub = bus.subscribe()
        seen_by_listener: list[str] = []
        bus.add_listener(lambda e: seen_by_listener.append(e["type"]))
        bus.publish("a", n=1)
        t = threading.Thread(target=lambda: [bus.publish("b", n=i) for i in range(3)])
        t.start()
        t.join()
        got = [await sub.get() for _ in range(4)]
        assert seen_by_listener == ["a", "b", "b", "b"]
        sub.close()
        assert await sub.get() is None
        assert bus.subscribers == 0
        return got

    got = asyncio.run(main())
    assert [e["type"] for e in got] == ["a", "b", "b", "b"]
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)
    assert [e["n"] for e in got[1:]] == [0, 1, 2]


def test_an_event_published_on_the_loop_waits_for_earlier_ones_from_other_threads() -> None:
    """The store's writer thread publishes a turn (queued for the loop); before the loop runs that, something on the
    loop publishes: subscribers and listeners still get them in seq order (a dashboard once saw seq 9 before 7)."""
    async def main() -> tuple[list[dict], list[int]]:
        bus = EventBus()
        bus.bind()
        sub = bus.subscribe()
        heard: list[int] = []

        def listener(event: dict) -> None:
            heard.append(event["seq"])
            if event["type"] == "turn":  # a listener publishing from inside a delivery waits its turn too
                bus.publish("call.updated", call_id=event["call_id"])

        bus.add_listener(listener)
        t = threading.Thread(target=lambda: [bus.publish("turn", call_id="c1", n=i) for i in range(2)])
        t.start()
        t.join()  # the loop is blocked here: the thread's events are queued, not delivered
        bus.publish("call.updated", call_id="c1", on_loop=True)  # delivered now, after the two queued turns
        got = [sub._queue.get_nowait() for _ in range(sub._queue.qsize())]
        return got, heard

    got, heard = asyncio.run(main())
    assert [e["seq"] for e in got] == sorted(e["seq"] for e in got) == heard
    assert [e["type"] for e in got] == ["turn", "turn", "call.updated", "call.updated", "call.updated"]
    assert [e.get("n") for e in got if e["type"] == "turn"] == [0, 1]
    assert got[2]["on_loop"] is True  # published on the loop after the thread's two, delivered after them
    assert [e["call_id"] for e in got[3:]] == ["c1", "c1"]  # the listener's own, after the event it was given


def test_slow_subscriber_loses_oldest_and_filter_applies() -> None:
    async def main() -> None:
        bus = EventBus()
        bus.bind()
        slow = bus.subscribe(maxsize=2)
        only_x = bus.subscribe(accept=lambda e: e.get("call_id") == "x")
        for i in range(5):
            bus.publish("turn", call_id="x" if i % 2 else "y", i=i)
        assert slow.dropped == 3
        assert [(await slow.get())["i"] for _ in range(2)] == [3, 4]
        assert [(await only_x.get())["i"] for _ in range(2)] == [1, 3]

    asyncio.run(main())


def test_call_store_publishes_each_committed_write(tmp_path) -> None:
    async def main() -> list[dict]:
        bus = EventBus()
        bus.bind()
        sub = bus.subscribe()
        store = CallStore.from_url(f"sqlite:///{tmp_path / 'calls.db'}")
        store.events = bus
        now = datetime.now(UTC)
        await store.arun("open_call", "c1", "webrtc", "+15551230001")
        tid = await store.arun("add_turn", "c1", "caller", "where is my order", now, intents=[{"name": "order_status"}])
        await store.arun("add_turn", "c1", "agent", "hello, this is Ann", now)
        await store.arun("update_turn", tid, end=now)
        await store.arun("close_call", "c1", "handoff", "handoff")
        events = [await sub.get() for _ in range(5)]
        store.close()
        assert store.get("c1")["turns"][1]["speaker"] == "agent"
        return events

    events = asyncio.run(main())
    assert [e["type"] for e in events] == ["call.started", "turn", "turn", "turn.updated", "call.ended"]
    assert events[0]["call"]["caller_id"] == "+15551230001"
    assert events[1]["turn"]["text"] == "where is my order" and events[1]["turn"]["seq"] == 0
    assert events[2]["turn"]["speaker"] == "agent" and events[2]["turn"]["seq"] == 1
    assert events[3]["turn_id"] == events[1]["turn"]["id"]
    assert events[4]["outcome"] == "handoff"
