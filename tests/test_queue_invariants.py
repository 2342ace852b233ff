"""Random sequences of queue events (seeded, so every run is the same): what the ACD reports in its actions
must agree with its snapshots, and no caller or agent may be lost, double-booked or left idle next to a
waiting caller."""

from __future__ import annotations

import random

import pytest

from telephony.queue.acd import ACD
from telephony.queue.actions import (
    AgentStateChanged,
    Announce,
    CallLeftQueue,
    Connect,
    Fallback,
    RingAgent,
    StopRinging,
    Transfer,
)
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.request import QueueRequest

RETRY = 30.0
AGENTS = [
    AgentConfig(id="ann", skills=["tech"], logged_in=True),
    AgentConfig(id="bob", logged_in=True),
    AgentConfig(id="cy", max_calls=2, logged_in=True),
    AgentConfig(id="dee", skills=["tech"]),
]


class Model:
    """What the actions say happened."""

    def __init__(self) -> None:
        self.queued: dict[str, str] = {}  # call -> queue
        self.rings: set[tuple[str, str]] = set()
        self.connected: dict[str, str] = {}  # call -> agent
        self.left: dict[str, int] = {}
        self.states = {a.id: ("available" if a.logged_in else "offline") for a in AGENTS}
        self.declined: dict[tuple[str, str], float] = {}  # (call, agent) -> may be offered again from

    def apply(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, RingAgent):
                assert a.call_id in self.queued and (a.call_id, a.agent_id) not in self.rings
                self.rings.add((a.call_id, a.agent_id))
            elif isinstance(a, StopRinging):
                self.rings.remove((a.call_id, a.agent_id))
            elif isinstance(a, Connect):
                self.rings.remove((a.call_id, a.agent_id))
                assert not [r for r in self.rings if r[0] == a.call_id]
                self.connected[a.call_id] = a.agent_id
            elif isinstance(a, CallLeftQueue):
                self.left[a.call_id] = self.left.get(a.call_id, 0) + 1
                self.queued.pop(a.call_id, None)
                assert not [r for r in self.rings if r[0] == a.call_id]
            elif isinstance(a, AgentStateChanged):
                self.states[a.agent_id] = a.state
            else:
                assert isinstance(a, Announce | Fallback | Transfer)
                if isinstance(a, Announce):
                    assert a.call_id in self.queued and a.position >= 1


def check(acd: ACD, model: Model, now: float) -> None:
    snap = acd.snapshot()["queues"]
    waiting = {w["call_id"]: (q["name"], w) for q in snap for w in q["waiting"]}
    assert {c: q for c, (q, _) in waiting.items()} == model.queued
    for q in snap:
        assert [w["position"] for w in q["waiting"]] == list(range(1, len(q["waiting"]) + 1))
        prios = [w["priority"] for w in q["waiting"]]
        assert prios == sorted(prios, reverse=True)
    for call, (_, w) in waiting.items():
        assert set(w["ringing"]) == {a for c, a in model.rings if c == call}
    agents = {a["id"]: a for a in acd.agents_snapshot()}
    for aid, a in agents.items():
        assert a["state"] == model.states[aid]
        assert len(a["calls"]) <= a["max_calls"]
        assert len([r for r in model.rings if r[1] == aid]) == (a["offered_call"] is not None)
        assert set(a["calls"]) == {c for c, ag in model.connected.items() if ag == aid}
    # Nobody available next to a caller who waits unrung (unless that agent declined them).
    for call, (qname, w) in waiting.items():
        if w["ringing"]:
            continue
        for aid, a in agents.items():
            if a["state"] == "available" and qname in a["queues"]:
                assert model.declined.get((call, aid), now) > now, (call, aid)


@pytest.mark.parametrize("seed", range(6))
def test_random_event_sequences_keep_the_acd_consistent(seed: int) -> None:
    rng = random.Random(seed)
    clock = [0.0]
    strategy = ("longest_idle", "round_robin", "ring_all")[seed % 3]
    queues = [
        QueueConfig(
            name="general",
            strategy=strategy,
            agent_confirm=seed % 2 == 1,
            max_wait=120,
            wrap_up=5,
            agent_timeout=10,
            announce_every=15,
            priority_rules={"frustrated": 3},
            decline_retry=RETRY,
        ),
        QueueConfig(
            name="tech",
            skills=["tech"],
            strategy=strategy,
            max_wait=200,
            wrap_up=0,
            agent_timeout=8,
            decline_retry=RETRY,
        ),
    ]
    acd = ACD(AGENTS, queues, lambda: clock[0])
    model = Model()
    n = 0
    for _ in range(400):
        op = rng.random()
        rings = sorted(model.rings)
        if op < 0.2:
            n += 1
            level = rng.choice(["calm", "annoyed", "frustrated"])
            request = QueueRequest(
                queue=rng.choice(["general", "tech"]), priority=rng.choice([0, 0, 2]), frustration=level
            )
            actions = acd.enqueue(f"c{n}", request)
            model.queued[f"c{n}"] = str(request.queue)
            model.apply(actions)
        elif op < 0.35 and rings:
            call, agent = rng.choice(rings)
            model.apply(acd.agent_answered(call, agent))
            if (call, agent) in model.rings and rng.random() < 0.5:
                key = rng.choice("12")
                if key == "2":
                    model.declined[(call, agent)] = clock[0] + RETRY
                model.apply(acd.agent_key(call, agent, key))
        elif op < 0.4 and rings:
            call, agent = rng.choice(rings)
            model.declined[(call, agent)] = clock[0] + RETRY
            model.apply(acd.agent_declined(call, agent))
        elif op < 0.43 and rings:
            call, agent = rng.choice(rings)
            model.apply(acd.agent_unreachable(call, agent))
        elif op < 0.55 and (model.connected or model.queued):
            call = rng.choice(sorted([*model.connected, *model.queued]))
            model.apply(acd.hangup(call))
            model.connected.pop(call, None)
        elif op < 0.58 and model.queued:
            model.apply(acd.caller_key(rng.choice(sorted(model.queued)), "1"))
        elif op < 0.68:
            agent = rng.choice(AGENTS).id
            model.apply(
                acd.set_agent_state(
                    agent, rng.choice(["available", "available", "paused", "offline"]), "break"
                )
            )
        else:
            clock[0] += rng.choice([0.5, 2.0, 5.0, 11.0, 40.0])
            model.apply(acd.tick())
        check(acd, model, clock[0])
    # Drain: every caller leaves the queue exactly once.
    for call in sorted(model.connected):
        model.apply(acd.hangup(call))
    model.connected.clear()
    clock[0] += 10_000
    model.apply(acd.tick())
    check(acd, model, clock[0])
    assert not model.queued and not model.rings
    assert set(model.left) == {f"c{i}" for i in range(1, n + 1)}
    assert set(model.left.values()) == {1}
    stats = [acd.queue_stats(q.name) for q in queues]
    assert sum(s["answered"] + s["abandoned"] + s["timed_out"] + s["callbacks"] for s in stats) == n
