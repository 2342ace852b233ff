"""The ACD's queue shared by the nodes of a cluster (a real Redis; telephony.queue.entries, RedisQueueEntries), and
the cluster as a whole (`voicebot cluster up --nodes 3`: Kamailio, PostgreSQL, Redis, three nodes).

Two nodes' ACDs in this process, each driven by its own QueueRunner with the shared agent claims and queue entries:
callers waiting on both nodes are offered to the one agent in their order of arrival over the nodes, and the
statistics are the cluster's; a node that goes silent leaves its waiting callers counted abandoned `node_lost`,
not vanished; while Redis is down no agent is rung unchecked, and the queue goes on when it is back.

The whole cluster: node 1's dashboard shows all 20 live calls of 20 sipp calls spread over the 3 nodes; PostgreSQL
stopped for 10 s during a call (WebRTC caller, Piper speech): the call goes on, the dashboard sees its turns live,
and every turn lands afterwards;
callers waiting on two nodes show in one queue on node 1's dashboard, and after kill -9 of one node its caller is
counted abandoned `node_lost` and the shared state (records, claims, queue entries) is consistent."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from auth_helpers import cookie
from cluster_helpers import (
    Cluster,
    RedisServer,
    SharedCluster,
    check_queue_invariants,
    needs_cluster,
    sipp,
    sipp_result,
    start_cluster_postgres,
    stop_cluster_postgres,
)
from sqlalchemy import create_engine, text

from telephony.queue.actions import Action, RingAgent
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.entries import COUNTERS, LocalQueueEntries
from telephony.queue.request import QueueRequest
from telephony.queue.runner import QueueHandlers, QueueRunner, SimulatedTime
from voicebot.cluster.redis_state import RedisAgentClaims, RedisQueueEntries

QUEUE = QueueConfig(name="general", agent_timeout=20, max_wait=600, wrap_up=0, announce_every=0)
ALICE = AgentConfig(id="alice", contact="sip:alice@127.0.0.1")
BOB = AgentConfig(id="bob", contact="sip:bob@127.0.0.1")


class Rings(QueueHandlers):
    """Notes every agent rung (the telephony side of a node, without telephony)."""

    def __init__(self) -> None:
        self.rung: list[str] = []

    def ring(self, action: RingAgent) -> None:
        self.rung.append(action.call_id)


class Node:
    def __init__(self, node_id: str, redis_url: str, sim: SimulatedTime, lease_s: float = 5.0,
                 agents: tuple[AgentConfig, ...] = (ALICE,)) -> None:
        from telephony.queue.acd import ACD

        self.rings = Rings()
        self.claims = RedisAgentClaims(redis_url, node_id, lease_s=lease_s)
        self.entries = RedisQueueEntries(redis_url, node_id, lease_s=lease_s, lost_after_s=lease_s)
        self.runner = QueueRunner(ACD(agents, [QUEUE], sim.clock, entries=self.entries), self.rings,
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
    deadline = time.monotonic() + 15
    while True:  # the next heartbeats: the entry written while Redis was away is written once it has loaded
        try:
            n1.entries.renew()
            break
        except redis.RedisError:
            assert time.monotonic() < deadline, "Redis did not come back"
            time.sleep(0.2)  # as the heartbeat retries, bounded
    beat(shared_redis.url, "n1")
    sim.advance(5)
    assert n1.rings.rung == ["before"]
    assert [w["call_id"] for w in n1.runner.acd.snapshot()["queues"][0]["waiting"]] == ["before", "during"]
    check_queue_invariants(shared_redis.url, alive={"n1"})


def test_cluster_queue_connected_now_counts_the_calls_of_every_node(shared_redis: RedisServer) -> None:
    sim = SimulatedTime()
    n1 = Node("n1", shared_redis.url, sim, agents=(ALICE, BOB))
    n2 = Node("n2", shared_redis.url, sim, lease_s=1.0, agents=(ALICE, BOB))
    beat(shared_redis.url, "n1", "n2")
    # Alice takes a caller on n1, Bob one on n2 (each logged in where their call is, as the relay would do).
    n1.caller("c1")
    n1.runner.set_agent_state("alice", "available")
    n1.runner.agent_answered("c1", "alice")
    n2.caller("c2")
    n2.runner.set_agent_state("bob", "available")
    n2.runner.agent_answered("c2", "bob")
    assert (n1.rings.rung, n2.rings.rung) == (["c1"], ["c2"])
    for node in (n1, n2):
        assert node.runner.acd.queue_stats("general")["connected_now"] == 2
    n1.runner.hangup("c1")
    for node in (n1, n2):
        assert node.runner.acd.queue_stats("general")["connected_now"] == 1
    # n2 falls silent with Bob's caller: once it counts as lost, its call is not counted (nor kept) any more.
    deadline = time.monotonic() + 15
    while n1.runner.acd.queue_stats("general")["connected_now"] and time.monotonic() < deadline:
        beat(shared_redis.url, "n1")
        time.sleep(0.2)  # n1's heartbeat, bounded by the deadline
    assert n1.runner.acd.queue_stats("general")["connected_now"] == 0
    assert redis.Redis.from_url(shared_redis.url).hlen("voicebot:queue:connected:general") == 0


def test_local_queue_entries_count_the_callers_talking_to_agents() -> None:
    entries = LocalQueueEntries(lambda: 0.0)
    entries.connected("a", "general", True)
    entries.connected("b", "general", True)
    entries.connected("c", "sales", True)
    entries.connected("a", "general", False)
    assert (entries.connected_now("general"), entries.connected_now("sales")) == (1, 1)


class RingsAt(QueueHandlers):
    """Notes when each agent is rung, on the loop."""

    def __init__(self) -> None:
        self.rung: asyncio.Queue[tuple[str, float]] = asyncio.Queue()

    def ring(self, action: RingAgent) -> None:
        self.rung.put_nowait((action.call_id, time.monotonic()))


def test_cluster_queue_an_agent_freed_on_one_node_is_rung_at_once_for_the_earlier_caller_on_another(
        shared_redis: RedisServer) -> None:
    """Alice talks on n2 while a caller waits on n1, whose claim was just refused (its timed retry is 2 s away):
    her hang-up on n2 is told to n1 at once (QueueChanges), which rings her without waiting for the retry."""
    from voicebot.cluster.redis_state import QueueChanges

    async def scenario() -> tuple[str, float, dict[str, tuple[str, str, int]]]:
        runners, changes, rings = {}, [], {}
        for node in ("n1", "n2"):
            rings[node] = RingsAt()
            claims = RedisAgentClaims(shared_redis.url, node, lease_s=5.0)
            entries = RedisQueueEntries(shared_redis.url, node, lease_s=5.0, lost_after_s=5.0)
            runners[node] = QueueRunner.on_loop([ALICE], [QUEUE], rings[node], claims=claims, entries=entries)
            notices = QueueChanges(shared_redis.url, node)
            notices.add_sink(runners[node].recheck)
            await notices.start()
            changes.append(notices)
        try:
            await asyncio.wait_for(asyncio.gather(*(c.subscribed.wait() for c in changes)), 10)
            beat(shared_redis.url, "n1", "n2")
            n1, n2 = runners["n1"], runners["n2"]
            n2.enqueue("b0", QueueRequest(queue="general"))
            n2.set_agent_state("alice", "available")
            assert (await asyncio.wait_for(rings["n2"].rung.get(), 5))[0] == "b0"
            n2.agent_answered("b0", "alice")
            n1.set_agent_state("alice", "available")
            n1.enqueue("a1", QueueRequest(queue="general"))  # n1 tries Alice: n2 holds her, retried in 2 s
            assert rings["n1"].rung.empty() and n1.acd.agent_state("alice") == "busy"
            freed_at = time.monotonic()
            n2.hangup("b0")
            call_id, rung_at = await asyncio.wait_for(rings["n1"].rung.get(), 10)
            holders = RedisAgentClaims(shared_redis.url, "test", lease_s=5.0).holders()
            return call_id, rung_at - freed_at, holders
        finally:
            for c in changes:
                await c.close()
            for r in runners.values():
                await r.close()

    call_id, gap_s, holders = asyncio.run(scenario())
    assert call_id == "a1"
    assert gap_s < 1.0, gap_s  # generous: the timed retry alone would ring her about 2 s after the hang-up
    assert holders["alice"][:2] == ("n1", "a1")  # one owner: the node that rings her
    check_queue_invariants(shared_redis.url, alive={"n1", "n2"})


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


# --- the whole cluster ----------------------------------------------------------------------------------------------

@pytest.fixture
def cluster(shared_cluster: SharedCluster) -> Cluster:
    """The cluster shared with tests/test_cluster_front.py (tests/conftest.py: its config is
    cluster_helpers.SHARED_CLUSTER_CONFIG; supervisor ``sup``), every node up."""
    return shared_cluster.ready()


def _token(node: Any) -> str:
    return cookie(node.http, "sup")


def _live_calls(node: Any, token: str) -> list[dict[str, Any]]:
    from test_cluster_state import get_json

    status, body = get_json(f"{node.http}/api/live", token)
    assert status == 200, status
    return list(body["calls"])


def _open_nodes(cluster: Cluster) -> set[str]:
    engine = create_engine(cluster.postgres_url)
    try:
        with engine.connect() as conn:
            return {n for (n,) in conn.execute(text('SELECT DISTINCT node_id FROM voicebot_calls WHERE "end" IS NULL'))}
    finally:
        engine.dispose()


@needs_cluster
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cluster_dashboard_on_node_1_shows_all_20_live_calls_spread_over_3_nodes(cluster: Cluster,
                                                                                tmp_path: Path) -> None:
    from test_cluster_state import Dashboard

    n1 = cluster.nodes[0]
    token = _token(n1)
    dashboard = Dashboard(n1.http, token)
    calls = sipp(tmp_path, "uac_cluster_call.xml", cluster.kamailio, "-s", "bot", "-m", "20", "-r", "5",
                 "-d", "25000", "-l", "20")
    try:
        deadline = time.monotonic() + 90
        live = _live_calls(n1, token)
        while len(live) < 20 and time.monotonic() < deadline:
            time.sleep(0.5)  # polls node 1's live calls, bounded
            live = _live_calls(n1, token)
        # All 20 at the same moment, on every node, in node 1's live view; a dashboard opened now gets them all.
        assert len(live) == 20, [(c["id"], c["node"]) for c in live]
        assert {c["node"] for c in live} == {"n1", "n2", "n3"}, [c["node"] for c in live]
        late = Dashboard(n1.http, token)
        late.close()
        assert {c["id"] for c in late.hello["calls"]} == {c["id"] for c in live}
        started = {e["call_id"] for e in dashboard.events if e.get("type") == "call.started"}
        assert {c["id"] for c in live} <= started
    finally:
        code, out = sipp_result(calls, timeout=180)
        dashboard.close()
    assert code == 0, f"sipp: some of the 20 calls failed:\n{out[-3000:]}"


@needs_cluster
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cluster_postgres_down_10_s_during_a_call_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    from test_cluster_state import Dashboard, speech

    from voicebot.client.webrtc import place_call

    n1, n2 = cluster.nodes[0], cluster.nodes[1]
    token = _token(n1)
    # The caller asks once the greeting (about 12 s) is over and says goodbye soon after: the bot's answers and the
    # end of the call fall in the outage.
    wav = speech(tmp_path / "say.wav", 14.0, "I ordered a lamp yesterday and I want to know where my order is.", 6.0,
                 "Thank you, that is all. Goodbye.", 0.4)
    dashboard = Dashboard(n1.http, token)

    async def scenario() -> tuple[Any, float, float, list[dict[str, Any]]]:
        call = asyncio.create_task(place_call(n2.http, wav, tail_s=2.0, max_wait_s=40))
        # The caller's request written (its turn event): the database goes down before the bot answers.
        asked = await asyncio.to_thread(dashboard.wait_for, lambda e: e["type"] == "turn" and e["node"] == "n2"
                                        and e["turn"]["speaker"] == "caller", 90)
        down_at = time.time()
        cmdline = await asyncio.to_thread(stop_cluster_postgres, cluster)
        await asyncio.sleep(10)  # the outage itself: its length is the point of the test
        # What the dashboard on node 1 saw of the call while PostgreSQL was still down.
        live = [e for e in dashboard.of_call(asked["call_id"]) if e["type"] == "turn"]
        up_at = time.time()
        await asyncio.to_thread(start_cluster_postgres, cluster, cmdline)
        return await call, down_at, up_at, live

    result, down_at, up_at, live = asyncio.run(scenario())
    ended = dashboard.wait_for(lambda e: e["type"] == "call.ended" and e.get("call_id") == result.call_id, 60)
    seen = [e for e in dashboard.of_call(result.call_id) if e["type"] == "turn"]
    dashboard.close()
    # The record (read after the database came back) has every turn the dashboard saw, the call closed.
    assert result.record is not None and result.record["end"], result.record
    turns = result.record["turns"]
    # The call went on while the database was down: the bot answered then (its turns' times, written later).
    spoken = [datetime.fromisoformat(t["start"]).timestamp() for t in turns if t["speaker"] == "bot"]
    assert any(down_at < t < up_at for t in spoken), (down_at, up_at, [(t["speaker"], t["start"]) for t in turns])
    assert len([t for t in turns if t["speaker"] == "caller"]) >= 2 and len(turns) == len(seen), (turns, seen)
    # The dashboard followed the call live during the outage (turns published before their writes landed), and
    # got each turn once: the writes landing afterwards published nothing again.
    assert any(e["turn"]["speaker"] == "bot" and e["ts"] > down_at for e in live), (down_at, live)
    assert sorted(t["text"] for t in turns) == sorted(e["turn"]["text"] for e in seen)
    assert result.record["outcome"] == ended["outcome"] != "node_lost"


@needs_cluster
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_cluster_one_queue_over_the_nodes_and_a_killed_nodes_caller_counted_node_lost(cluster: Cluster,
                                                                                      tmp_path: Path) -> None:
    """Runs last: it kills node 3. Alice is logged out, so callers asking for a person wait."""
    from test_cluster_state import Dashboard, get_json, speech

    from voicebot.client.webrtc import place_call

    n1, n2, n3 = cluster.nodes
    token = _token(n1)
    wav = speech(tmp_path / "say.wav", 0.4, "I want to speak to a human.", 60.0)
    dashboard = Dashboard(n1.http, token)

    def both_waiting(e: dict[str, Any]) -> bool:
        if e.get("type") != "queue":
            return False
        waiting = next(q for q in e["queues"] if q["name"] == "general")["waiting"]
        return {w["node"] for w in waiting} >= {"n2", "n3"}

    async def scenario() -> dict[str, Any]:
        on2 = asyncio.create_task(place_call(n2.http, wav, tail_s=2.0, max_wait_s=90))
        on3 = asyncio.create_task(place_call(n3.http, wav, tail_s=2.0, max_wait_s=90))
        board = await asyncio.to_thread(dashboard.wait_for, both_waiting, 90)
        os.kill(n3.pid, signal.SIGKILL)
        on3.cancel()
        deadline = time.monotonic() + 30
        stats = {}
        while time.monotonic() < deadline:
            status, body = await asyncio.to_thread(get_json, f"{n1.http}/api/queues", token)
            stats = next(q for q in body["queues"] if q["name"] == "general")["stats"]
            if stats["node_lost"]:
                break
            await asyncio.sleep(0.5)  # node 1 polled until the lost node's caller is counted, bounded
        on2.cancel()
        await asyncio.gather(on2, on3, return_exceptions=True)
        return {"board": board, "stats": stats}

    seen = asyncio.run(scenario())
    dashboard.close()
    # One queue over the nodes on node 1's dashboard: both callers, in arrival order, each with its node.
    waiting = next(q for q in seen["board"]["queues"] if q["name"] == "general")["waiting"]
    assert [w["position"] for w in waiting] == list(range(1, len(waiting) + 1))
    stats = seen["stats"]
    assert stats["node_lost"] == 1 and stats["abandoned"] >= 1, stats
    # The invariants over the shared state: records, agent claims and queue entries belong to nodes alive.
    client = redis.Redis.from_url(cluster.redis_url, decode_responses=True)
    deadline = time.monotonic() + 30
    while _open_nodes(cluster) - {"n1", "n2"} and time.monotonic() < deadline:
        time.sleep(0.5)  # the survivors closing node 3's records, bounded
    assert _open_nodes(cluster) <= {"n1", "n2"}
    assert set(client.zrange("voicebot:nodes", 0, -1)) == {"n1", "n2"}
    assert all(str(v).split(" ")[0] in {"n1", "n2"} for k in client.scan_iter("voicebot:agent:*")
               if (v := client.get(k)) is not None)
    check_queue_invariants(cluster.redis_url, alive={"n1", "n2"})
