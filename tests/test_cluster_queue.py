"""The ACD's queue shared by the nodes of a cluster (a real Redis; telephony.queue.entries, RedisQueueEntries).

Two nodes' ACDs in this process, each driven by its own QueueRunner with the shared agent claims and queue entries:
callers waiting on both nodes are offered to the one agent in their order of arrival over the nodes, and the
statistics are the cluster's; a node that goes silent leaves its waiting callers counted abandoned `node_lost`,
not vanished; while Redis is down no agent is rung unchecked, and the queue goes on when it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from cluster_helpers import RedisServer, check_queue_invariants

from telephony.queue.actions import Action, RingAgent
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.entries import COUNTERS, LocalQueueEntries
from telephony.queue.request import QueueRequest
from telephony.queue.runner import QueueHandlers, QueueRunner, SimulatedTime
from voicebot.cluster.redis_state import RedisAgentClaims, RedisQueueEntries

QUEUE = QueueConfig(name="general", agent_timeout=20, max_wait=600, wrap_up=0, announce_every=0)
ALICE = AgentConfig(id="alice", contact="sip:alice@127.0.0.1")


class Rings(QueueHandlers):
    """Notes every agent rung (the telephony side of a node, without telephony)."""

    def __init__(self) -> None:
        self.rung: list[str] = []

    def ring(self, action: RingAgent) -> None:
        self.rung.append(action.call_id)


class Node:
    def __init__(self, node_id: str, redis_url: str, sim: SimulatedTime, lease_s: float = 5.0) -> None:
        from telephony.queue.acd import ACD

        self.rings = Rings()
        self.claims = RedisAgentClaims(redis_url, node_id, lease_s=lease_s)
        self.entries = RedisQueueEntries(redis_url, node_id, lease_s=lease_s, lost_after_s=lease_s)
        self.runner = QueueRunner(ACD([ALICE], [QUEUE], sim.clock, entries=self.entries), self.rings,
                                  call_at=sim.call_at, claims=self.claims)

    def caller(self, call_id: str) -> list[Action]:
        return self.runner.enqueue(call_id, QueueRequest(queue="general", caller=f"+1555{call_id}"))


@pytest.fixture
def shared_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def beat(redis_url: str, *nodes: str) -> None:
    """The nodes' heartbeats (NodeWatch's), by Redis's clock."""
    client = redis.Redis.from_url(redis_url)
    seconds, micros = client.time()
    client.zadd("voicebot:nodes", {n: seconds + micros / 1e6 for n in nodes})


def test_cluster_queue_offers_callers_waiting_on_two_nodes_to_one_agent_in_arrival_order(
        shared_redis: RedisServer) -> None:
    sim = SimulatedTime()
    n1, n2 = Node("n1", shared_redis.url, sim), Node("n2", shared_redis.url, sim)
    beat(shared_redis.url, "n1", "n2")
    # Alice is logged out; callers arrive on n1, n2, n1 (Redis's clock orders them; a millisecond apart at least).
    for node, call in ((n1, "c1"), (n2, "c2"), (n1, "c3")):
        node.caller(call)
        time.sleep(0.002)  # distinct arrival times by Redis's clock: the order is the point of the test
    for node in (n1, n2):
        stats = node.runner.acd.queue_stats("general")
        assert (stats["waiting"], stats["answered"]) == (3, 0)
        waiting = node.runner.acd.snapshot()["queues"][0]["waiting"]
        assert [(w["call_id"], w["node"], w["position"]) for w in waiting] == [
            ("c1", "n1", 1), ("c2", "n2", 2), ("c3", "n1", 3)]
    # She logs in on n2 first (the node with the later caller): n2 leaves her for n1's earlier caller.
    n2.runner.set_agent_state("alice", "available")
    assert n2.rings.rung == []
    n1.runner.set_agent_state("alice", "available")
    assert n1.rings.rung == ["c1"]
    n1.runner.agent_answered("c1", "alice")
    sim.advance(30)  # n2 looks again (its recheck, then refused claims while alice talks on n1)
    assert n2.rings.rung == [] and n1.rings.rung == ["c1"]
    n1.runner.hangup("c1")  # alice is free: n1 gives her claim back, its own c3 came after n2's c2
    assert n1.rings.rung == ["c1"]
    sim.advance(5)
    assert n2.rings.rung == ["c2"]
    n2.runner.agent_answered("c2", "alice")
    n2.runner.hangup("c2")
    sim.advance(5)
    assert n1.rings.rung == ["c1", "c3"]
    n1.runner.agent_answered("c3", "alice")
    # The statistics are the cluster's, the same on both nodes.
    for node in (n1, n2):
        stats = node.runner.acd.queue_stats("general")
        assert (stats["waiting"], stats["answered"], stats["abandoned"]) == (0, 3, 0)
    check_queue_invariants(shared_redis.url, alive={"n1", "n2"})


def test_cluster_queue_counts_a_silent_nodes_waiting_callers_abandoned_node_lost(shared_redis: RedisServer) -> None:
    sim = SimulatedTime()
    n1, n9 = Node("n1", shared_redis.url, sim), Node("n9", shared_redis.url, sim, lease_s=1.0)
    beat(shared_redis.url, "n1", "n9")
    n9.caller("lost1")
    n9.caller("lost2")
    n1.caller("kept")
    assert n1.runner.acd.queue_stats("general")["waiting"] == 3
    n9.entries.renew()  # a beat of n9's, then silence: its entries' leases (1 s) run out, then it counts as lost
    deadline = time.monotonic() + 15
    while True:
        beat(shared_redis.url, "n1")
        n1.entries.renew()
        n1.entries.sweep()
        stats = n1.runner.acd.queue_stats("general")
        if stats["node_lost"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # n1's heartbeat, bounded by the deadline
    assert (stats["waiting"], stats["abandoned"], stats["node_lost"]) == (1, 2, 2), stats
    assert stats["average_abandon_wait_s"] >= 1.0
    check_queue_invariants(shared_redis.url, alive={"n1"})
    assert [w["call_id"] for w in n1.runner.acd.snapshot()["queues"][0]["waiting"]] == ["kept"]


def test_cluster_claims_are_refused_while_redis_is_down_and_the_queue_goes_on_when_it_is_back(
        shared_redis: RedisServer) -> None:
    sim = SimulatedTime()
    n1 = Node("n1", shared_redis.url, sim)
    beat(shared_redis.url, "n1")
    n1.caller("before")
    shared_redis.stop()
    n1.caller("during")  # joins here only; waiting counted on this node
    n1.runner.set_agent_state("alice", "available")
    assert n1.rings.rung == []  # her claim cannot be checked: nobody rings her unchecked
    assert n1.runner.acd.agent_state("alice") == "busy"  # counted busy here, asked again every 2 s
    assert n1.runner.acd.queue_stats("general")["waiting"] == 2
    shared_redis.start()
    n1.entries.renew()  # the next heartbeat: the entry written while Redis was away is written now
    beat(shared_redis.url, "n1")
    sim.advance(5)
    assert n1.rings.rung == ["before"]
    assert [w["call_id"] for w in n1.runner.acd.snapshot()["queues"][0]["waiting"]] == ["before", "during"]
    check_queue_invariants(shared_redis.url, alive={"n1"})


def test_local_queue_entries_keep_the_acds_order_and_counters() -> None:
    now = [0.0]
    entries = LocalQueueEntries(lambda: now[0])
    entries.join("a", "general", None, 0, returned=False)
    now[0] = 1.0
    entries.join("b", "general", "+1", 5, returned=False)
    entries.join("c", "general", None, 0, returned=True)
    entries.ringing("a", True)
    now[0] = 3.0
    assert [(e.call_id, e.waited_s, e.ringing) for e in entries.waiting()] == [
        ("c", 2.0, False), ("b", 2.0, False), ("a", 3.0, True)]
    entries.leave("c")
    entries.count("general", {"answered": 1, "wait_total": 2.5})
    assert [e.call_id for e in entries.waiting()] == ["b", "a"]
    counters = entries.counters("general")
    assert set(counters) == set(COUNTERS) and (counters["answered"], counters["wait_total"]) == (1, 2.5)
