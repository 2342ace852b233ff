"""The queue driver (timers, handlers, callback requests in a real SQLite file), hold music, announcements."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import pytest
from sqlalchemy import create_engine

from audio.pcm import SAMPLE_RATE
from telephony.queue.acd import ACD
from telephony.queue.actions import Announce, Connect, Fallback, RingAgent, StopRinging
from telephony.queue.announcements import announcement_text, wait_phrase
from telephony.queue.claims import Claim
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.hold_music import hold_music, hold_music_frames
from telephony.queue.request import QueueRequest
from telephony.queue.runner import QueueHandlers, QueueRunner, SimulatedTime
from telephony.queue.store import CallbackStore

HANDOFF = QueueRequest(
    queue="general",
    caller="+441234567",
    summary="Caller Ann Lee, verified. Wants to return order 1042.",
    customer_name="Ann Lee",
    verified=True,
    reason="caller_request",
    details={"summary": "Caller Ann Lee, verified. Wants to return order 1042.", "slots": {"order_id": "1042"}},
)


class Recorder(QueueHandlers):
    """Handlers that note what they were asked to do."""

    def __init__(self) -> None:
        self.done: list[object] = []
        self.callback_ids: list[int | None] = []

    def ring(self, action: RingAgent) -> None:
        self.done.append(action)

    def stop_ringing(self, action: StopRinging) -> None:
        self.done.append(action)

    def announce(self, action: Announce) -> None:
        self.done.append(action)

    def connect(self, action: Connect) -> None:
        self.done.append(action)

    def fallback(self, action: Fallback, callback_id: int | None) -> None:
        self.done.append(action)
        self.callback_ids.append(callback_id)


@pytest.fixture
def store(tmp_path) -> CallbackStore:  # type: ignore[no-untyped-def]
    s = CallbackStore(create_engine(f"sqlite:///{tmp_path / 'queue.db'}"))
    s.create_tables()
    return s


def sim_runner(
    agents: list[AgentConfig], queue: QueueConfig, store: CallbackStore | None = None
) -> tuple[QueueRunner, Recorder, SimulatedTime]:
    sim = SimulatedTime()
    rec = Recorder()
    runner = QueueRunner(ACD(agents, [queue], sim.clock), rec, call_at=sim.call_at, callbacks=store)
    return runner, rec, sim


def test_max_wait_fallback_writes_a_callback_request(store: CallbackStore) -> None:
    runner, rec, sim = sim_runner(
        [AgentConfig(id="a", contact="webrtc")],
        QueueConfig(name="general", max_wait=90, announce_every=40),
        store,
    )
    runner.enqueue("call-1", HANDOFF)
    sim.advance(89)
    assert [a.position for a in rec.done if isinstance(a, Announce)] == [1, 1, 1]  # at 0, 40 and 80 s
    assert store.requests() == []
    sim.advance(2)
    (fb,) = [a for a in rec.done if isinstance(a, Fallback)]
    assert (fb.kind, fb.reason) == ("callback", "max_wait")
    (req,) = store.requests(queue="general")
    assert rec.callback_ids == [req.id]
    assert (req.call_id, req.caller, req.reason, req.status) == (
        "call-1",
        "+441234567",
        "max_wait",
        "pending",
    )
    assert req.handoff["slots"] == {"order_id": "1042"}
    assert req.requested_at.tzinfo is not None
    assert sim.next_timer() is None  # nothing left to fire


def test_runner_drives_no_answer_then_wrap_up_through_timers() -> None:
    agents = [AgentConfig(id=i, contact=f"sip:{i}@127.0.0.1", logged_in=True) for i in ("a", "b")]
    runner, rec, sim = sim_runner(agents, QueueConfig(name="general", agent_timeout=10, wrap_up=5))
    states: list[tuple[str, str]] = []
    runner.add_listener(lambda ev: states.append((ev.agent_id, ev.state)) if hasattr(ev, "state") else None)
    runner.enqueue("c1", HANDOFF)
    sim.advance(10.5)
    assert [(type(a).__name__, a.agent_id) for a in rec.done] == [  # type: ignore[attr-defined]
        ("RingAgent", "a"),
        ("StopRinging", "a"),
        ("RingAgent", "b"),
    ]
    runner.agent_answered("c1", "b")
    runner.enqueue("c2", HANDOFF)
    sim.advance(30)
    runner.hangup("c1")
    sim.advance(4)
    assert not [a for a in rec.done if isinstance(a, RingAgent) and a.call_id == "c2"]
    sim.advance(2)
    assert [a.agent_id for a in rec.done if isinstance(a, RingAgent) and a.call_id == "c2"] == ["b"]
    assert ("a", "paused") in states and ("b", "wrap_up") in states


def test_callback_store_status_and_filters(store: CallbackStore) -> None:
    t0 = dt.datetime(2026, 1, 2, 9, 0, tzinfo=dt.UTC)
    first = store.add(
        call_id="x", caller="+1", queue="tech", reason="caller_request", handoff={"a": 1}, now=t0
    )
    store.add(
        call_id="y",
        caller=None,
        queue="general",
        reason="max_wait",
        handoff={"slots": {"date": dt.date(2026, 1, 1)}},
        now=t0 + dt.timedelta(minutes=1),
    )
    assert [r.call_id for r in store.requests()] == ["x", "y"]
    assert store.set_status(first, "done") is True
    assert [r.call_id for r in store.requests()] == ["y"]
    assert [r.call_id for r in store.requests(status=None, queue="tech")] == ["x"]
    assert store.get(first).status == "done"  # type: ignore[union-attr]
    assert store.requests()[0].handoff == {"slots": {"date": "2026-01-01"}}
    assert store.set_status(999, "done") is False
    with pytest.raises(ValueError, match="status must be"):
        store.set_status(first, "finished")


def test_runner_on_a_real_loop_runs_coroutine_handlers_fires_timers_and_records_callbacks(
    store: CallbackStore,
) -> None:
    async def scenario() -> tuple[list[str], int | None]:
        seen: list[str] = []
        stopped, fell_back = asyncio.Event(), asyncio.Event()
        recorded: list[int | None] = []

        class Handlers(QueueHandlers):
            async def ring(self, action: RingAgent) -> None:
                seen.append(f"ring {action.agent_id}")

            def stop_ringing(self, action: StopRinging) -> None:
                seen.append(f"stop {action.agent_id} {action.reason}")
                stopped.set()

            async def fallback(self, action: Fallback, callback_id: int | None) -> None:
                seen.append(f"fallback {action.kind} {action.reason}")
                recorded.append(callback_id)
                fell_back.set()

        agent = AgentConfig(id="a", contact="webrtc", logged_in=True)
        queue = QueueConfig(name="general", agent_timeout=0.05)
        runner = QueueRunner.on_loop([agent], [queue], Handlers(), callbacks=store)
        runner.enqueue("c1", HANDOFF)
        await asyncio.wait_for(stopped.wait(), timeout=10)
        runner.caller_key("c1", "1")
        await asyncio.wait_for(fell_back.wait(), timeout=10)
        await runner.close()
        return seen, recorded[0]

    seen, callback_id = asyncio.run(scenario())
    assert seen == ["ring a", "stop a no_answer", "fallback callback caller_request"]
    (req,) = store.requests()
    assert callback_id == req.id and req.reason == "caller_request"


def test_hold_music_is_a_soft_seamless_loop_in_the_telephone_band() -> None:
    pcm = np.frombuffer(hold_music(), dtype="<i2").astype(np.float64)
    assert len(pcm) == 8 * SAMPLE_RATE
    peak_dbfs = 20 * np.log10(np.max(np.abs(pcm)) / 32767)
    assert -21 < peak_dbfs < -19
    spectrum = np.abs(np.fft.rfft(pcm[: SAMPLE_RATE // 2]))
    freqs = np.fft.rfftfreq(SAMPLE_RATE // 2, 1 / SAMPLE_RATE)
    assert 515 < freqs[np.argmax(spectrum)] < 531  # first note: C5, 523 Hz
    energy_in_band = np.sum(spectrum[(freqs > 300) & (freqs < 3400)] ** 2) / np.sum(spectrum**2)
    assert energy_in_band > 0.99
    assert abs(pcm[0]) < 50 and abs(pcm[-1]) < 50  # the loop joins without a click
    frames = hold_music_frames()
    chunks = [next(frames) for _ in range(401)]  # a little over one loop
    assert {len(c) for c in chunks} == {640}
    assert chunks[400] == chunks[0]


def test_announcement_text() -> None:
    text = announcement_text(Announce("c", "general", 2, 150.0, "1", first=True))
    assert text.startswith("All our agents are busy")
    assert "You are second in line." in text and "about 3 minutes" in text and "press 1" in text
    later = announcement_text(Announce("c", "general", 14, None, None, first=False))
    assert later == "You are number 14 in line."
    assert [wait_phrase(s) for s in (20, 61, 3900)] == [
        "less than a minute",
        "about one minute",
        "about 1 hour 5 minutes",
    ]


def test_a_failing_handler_is_logged_and_the_queue_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Recorder):
        def ring(self, action: RingAgent) -> None:
            raise RuntimeError("agent page gone")

    sim = SimulatedTime()
    rec = Broken()
    agent = AgentConfig(id="a", contact="webrtc", logged_in=True)
    runner = QueueRunner(
        ACD([agent], [QueueConfig(name="general", agent_timeout=5)], sim.clock), rec, call_at=sim.call_at
    )
    runner.enqueue("c1", HANDOFF)
    assert "agent page gone" in caplog.text
    sim.advance(6)  # the no-answer timer still runs
    assert [(a.agent_id, a.reason) for a in rec.done if isinstance(a, StopRinging)] == [("a", "no_answer")]


class NodeClaims:
    """Two nodes' view of one shared claim table (what Redis holds in a cluster), for runners on one clock."""

    def __init__(self, table: dict[str, tuple[str, str]], node: str) -> None:
        self.table, self.node = table, node

    def claim(self, agent_id: str, call_id: str) -> Claim | None:
        holder = self.table.setdefault(agent_id, (self.node, call_id))
        return Claim(agent_id, holder[1], 1) if holder[0] == self.node else None

    def release(self, agent_id: str) -> None:
        if self.table.get(agent_id, ("", ""))[0] == self.node:
            del self.table[agent_id]


def test_cluster_an_agent_held_by_another_node_is_not_rung_and_is_tried_again_once_free() -> None:
    sim, table = SimulatedTime(), {}
    queue = QueueConfig(name="general", wrap_up=5, agent_timeout=20)
    nodes = []
    for name in ("n1", "n2"):
        rec = Recorder()
        acd = ACD([AgentConfig(id="a", contact="webrtc", logged_in=True)], [queue], sim.clock)
        nodes.append((QueueRunner(acd, rec, call_at=sim.call_at, claims=NodeClaims(table, name)), rec))
    (one, rec1), (two, rec2) = nodes
    one.enqueue("call-1", HANDOFF)
    assert [type(a) for a in rec1.done] == [RingAgent] and table == {"a": ("n1", "call-1")}
    two.enqueue("call-2", HANDOFF)
    def rings(rec: Recorder) -> list[str]:
        return [a.call_id for a in rec.done if isinstance(a, RingAgent)]

    assert rings(rec2) == [] and two.acd.agents_snapshot()[0]["state"] == "busy"  # rings on n1: not rung here
    sim.advance(3)
    assert rings(rec2) == []  # tried again after ELSEWHERE_RETRY_S, still held
    one.agent_answered("call-1", "a")
    one.hangup("call-1")
    assert table == {"a": ("n1", "call-1")}  # kept through the wrap-up
    sim.advance(6)
    assert table == {"a": ("n2", "call-2")} and rings(rec2) == ["call-2"]
