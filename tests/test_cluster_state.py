"""Shared state of a cluster: two `voicebot serve` nodes on one PostgreSQL and one Redis (started by the test).

A dashboard on node 1 sees node 2's calls (live events and the hello snapshot), a login on one node is good on
the other and failed logins are counted over both; Redis stopped for 10 s during a call: the call goes on and
node 1's dashboard gets every event of it once Redis is back; node 2 killed (-9) during a call: node 1 closes
its record as `node_lost` and the shared state is consistent. Callers are aiortc WebRTC clients saying speech
synthesised now (Piper)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import redis
import soundfile as sf
from auth_helpers import add_user, cookie
from cluster_helpers import PostgresServer, RedisServer, node_config
from net_helpers import free_port, rtp_ports, sip_port
from sqlalchemy import create_engine, text
from websockets.sync.client import connect

from audio.speech import espeak_ng, piper_tts, write_wav
from dialogs.db.engine import ensure_database
from dialogs.db.times import utc_now
from voicebot.client.local_server import ServerProcess
from voicebot.client.webrtc import place_call
from voicebot.storage.schema import prepare

pytestmark = pytest.mark.slow

GREETING = "Hello, you're speaking with the automated assistant of Acme Online Store. How can I help?"
Event = dict[str, Any]


class Dashboard:
    """A logged-in /ws/events client on one node, collecting events in a thread."""

    def __init__(self, base_url: str, token: str):
        self._connection = connect(base_url.replace("http://", "ws://") + "/ws/events",
                                   subprotocols=["voicebot", f"voicebot.bearer.{token}"])  # type: ignore[list-item]
        self.ws = self._connection.__enter__()  # a dashboard lives across the test's steps, not one block
        self.hello: Event = json.loads(self.ws.recv(timeout=10))
        self.events: list[Event] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for message in self.ws:
                with self._changed:
                    self.events.append(json.loads(message))
                    self._changed.notify_all()
        except Exception:  # the socket closed
            return

    def wait_for(self, match: Callable[[Event], bool], timeout: float) -> Event:
        with self._changed:
            found = self._changed.wait_for(lambda: next((e for e in self.events if match(e)), None), timeout)
        assert found, f"no such event within {timeout} s; got {[e.get('type') for e in self.events][-30:]}"
        return found

    def of_call(self, call_id: str) -> list[Event]:
        with self._changed:
            return [e for e in self.events if e.get("call_id") == call_id]

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


def speech(path: Path, *parts: str | float) -> Path:
    """A WAV of the caller: texts spoken by Piper, numbers are seconds of silence."""
    chunks = []
    for part in parts:
        if isinstance(part, str):
            samples, _rate = piper_tts(part, sample_rate=16000, noise_scale=0.0, noise_w_scale=0.0)
            chunks.append(samples)
        else:
            chunks.append(np.zeros(int(part * 16000), np.float32))
    write_wav(path, np.concatenate(chunks), 16000)
    return path


def get_json(url: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def post_login(base_url: str, name: str, password: str) -> int:
    body = json.dumps({"username": name, "password": password}).encode()
    request = urllib.request.Request(f"{base_url}/api/login", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as res:
            return res.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    base = tmp_path_factory.mktemp("cluster")
    with RedisServer() as redis_server, PostgresServer() as pg:
        nodes: list[ServerProcess] = []
        sip_ports, agent_port = [sip_port(), sip_port()], free_port()
        try:
            # The schema and the demo data once, as `voicebot cluster up` makes them: nodes starting side by side
            # would race to make them.
            prepare(pg.url)
            ensure_database(pg.url, seed_demo=True, now=utc_now()).dispose()
            for i in (1, 2):
                # Agent alice: a SIP phone (baresip in the transfer test) that every node dials directly.
                port = sip_ports[i - 1]
                config = node_config(f"n{i}", redis_server.url, pg.url, call={"greeting": GREETING},
                                     dialog={"seed": 7}, auth={"max_failed_logins": 3},
                                     agents=[{"id": "alice", "contact": f"sip:alice@127.0.0.1:{agent_port}"}],
                                     queues=[{"name": "general", "agent_timeout": 10, "max_wait": 60}],
                                     sip={"enabled": True, "listen_udp": f"127.0.0.1:{port}",
                                          "listen_tcp": f"127.0.0.1:{port}", **rtp_ports(200)})
                nodes.append(ServerProcess(base / f"n{i}", config))
            with ThreadPoolExecutor(len(nodes)) as pool:  # the nodes load their models side by side
                for started in [pool.submit(node.start) for node in nodes]:
                    started.result()
            add_user(pg.url, "sup", "supervisor")
            token = cookie(nodes[0].url, "sup")  # before the throttle test fails logins from this address
            yield SimpleNamespace(redis=redis_server, pg=pg, nodes=nodes, token=token, dir=base, sip_ports=sip_ports,
                                  agent_port=agent_port)
        finally:
            for node in nodes:
                node.stop()


def record(pg_url: str, call_id: str) -> dict[str, Any]:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT node_id, outcome, end_reason, \"end\" FROM voicebot_calls WHERE id = :id"),
                               {"id": call_id}).mappings().one()
            turns = conn.execute(text("SELECT count(*) FROM voicebot_call_turns WHERE call_id = :id"),
                                 {"id": call_id}).scalar_one()
        return {**row, "turns": turns}
    finally:
        engine.dispose()


def test_cluster_login_on_one_node_works_on_the_other_and_failed_logins_count_over_both(cluster) -> None:
    n1, n2 = cluster.nodes
    status, body = get_json(f"{n2.url}/api/live", cluster.token)  # the session made on node 1, in PostgreSQL
    assert status == 200 and body == {"calls": []}
    add_user(cluster.pg.url, "mallory-target", "agent", agent_id="a9")
    assert [post_login(n1.url, "mallory-target", "wrong"), post_login(n2.url, "mallory-target", "wrong"),
            post_login(n1.url, "mallory-target", "wrong")] == [401, 401, 401]
    # Three failures from this address over both nodes: the limit (3 a minute) holds on either node.
    assert post_login(n2.url, "mallory-target", "wrong") == 429
    assert post_login(n1.url, "mallory-target", "pw-mallory-target") == 429
    client = redis.Redis.from_url(cluster.redis.url)
    assert client.zcard("voicebot:login:fail:addr:127.0.0.1") == 3
    client.delete(*client.keys("voicebot:login:*"))  # the next tests log in from this address too


def test_cluster_dashboard_on_node_1_sees_a_call_on_node_2(cluster, tmp_path: Path) -> None:
    n1, n2 = cluster.nodes
    wav = speech(tmp_path / "say.wav", 0.4, "I ordered a lamp yesterday and I want to know where my order is.", 0.4)
    dashboard = Dashboard(n1.url, cluster.token)
    assert dashboard.hello["calls"] == []

    async def scenario() -> tuple[Any, Event]:
        call = asyncio.create_task(place_call(n2.url, wav, tail_s=2.0))
        started = await asyncio.to_thread(dashboard.wait_for, lambda e: e["type"] == "call.started", 30)
        # A dashboard opened during the call gets it in its hello snapshot, with the node carrying it.
        late = await asyncio.to_thread(Dashboard, n1.url, cluster.token)
        late.close()
        assert [(c["id"], c["node"]) for c in late.hello["calls"]] == [(started["call_id"], "n2")]
        return await call, started

    result, started = asyncio.run(scenario())
    call_id = result.call_id
    assert started["call_id"] == call_id and started["node"] == "n2" and started["call"]["node"] == "n2"
    ended = dashboard.wait_for(lambda e: e["type"] == "call.ended" and e.get("call_id") == call_id, 30)
    dashboard.close()
    stored = record(cluster.pg.url, call_id)
    assert stored["node_id"] == "n2" and stored["end"] is not None and ended["outcome"] == stored["outcome"]
    seen = dashboard.of_call(call_id)
    assert len([e for e in seen if e["type"] == "turn"]) == stored["turns"] >= 3
    caller = next(e["turn"] for e in seen if e["type"] == "turn" and e["turn"]["speaker"] == "caller")
    assert "order_status" in [i["name"] for i in caller["intents"]]
    summary = [e["call"] for e in seen if e["type"] == "call.updated"][-1]
    assert summary["node"] == "n2" and "order_status" in summary["intents"]  # node 1's own live summary


def post_json(url: str, token: str, body: Any) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as res:
        return res.status


def agent_state_becomes(base_url: str, token: str, state: str, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if get_json(f"{base_url}/api/agents/alice", token)[1]["state"] == state:
            return True
        time.sleep(0.1)  # polls the other node's API, bounded
    return False


def test_cluster_agent_logged_in_on_one_node_is_so_on_every_node(cluster) -> None:
    n1, n2 = cluster.nodes
    assert get_json(f"{n2.url}/api/agents/alice", cluster.token)[1]["state"] == "offline"
    assert post_json(f"{n1.url}/api/agents/alice/state", cluster.token, {"state": "available"}) == 200
    assert agent_state_becomes(n2.url, cluster.token, "available")
    assert post_json(f"{n2.url}/api/agents/alice/state", cluster.token, {"state": "paused", "reason": "lunch"}) == 200
    assert agent_state_becomes(n1.url, cluster.token, "paused")
    assert post_json(f"{n1.url}/api/agents/alice/state", cluster.token, {"state": "offline"}) == 200
    assert agent_state_becomes(n2.url, cluster.token, "offline")


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed")
def test_cluster_caller_on_node_2_is_warm_transferred_to_an_agent_logged_in_on_node_1(cluster, tmp_path: Path) -> None:
    """Alice logs in on node 1; a SIP caller (baresip) on node 2 asks for a person: node 2 claims alice in Redis,
    dials her phone (baresip, auto-answer) directly, she hears the whisper and the caller hears her."""
    from test_telephony_baresip import transcribe
    from test_transfer_e2e import baresip_config
    from test_transfer_live import AGENT_HZ, frames_at, tone

    n1, n2 = cluster.nodes
    rate = 8000
    hello, _ = espeak_ng("Hello, this is Alice from customer care.", rate=150, sample_rate=rate)
    sf.write(str(tmp_path / "agent.wav"),
             np.concatenate([np.zeros(9 * rate, np.int16), tone(AGENT_HZ, 4, rate), np.zeros(rate // 2, np.int16),
                             (hello * 20000).astype(np.int16), np.zeros(2 * rate, np.int16)]),
             rate, subtype="PCM_16")
    baresip_config(tmp_path / "agent", cluster.agent_port, tmp_path / "agent.wav", tmp_path / "agent_rec",
                   f"<sip:alice@127.0.0.1:{cluster.agent_port}>;regint=0;answermode=auto")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(tmp_path / "say.wav"),
                    "I want to speak to a human."], check=True)
    subprocess.run(["sox", str(tmp_path / "say.wav"), "-r", "8000", "-c", "1", "-b", "16", str(tmp_path / "in.wav"),
                    "pad", "6", "40"], check=True)
    baresip_config(tmp_path / "caller", free_port(), tmp_path / "in.wav", tmp_path / "caller_rec",
                   "<sip:5550199@127.0.0.1>;regint=0")
    assert post_json(f"{n1.url}/api/agents/alice/state", cluster.token, {"state": "available"}) == 200
    assert agent_state_becomes(n2.url, cluster.token, "available")
    agent = subprocess.Popen(["baresip", "-f", str(tmp_path / "agent"), "-t", "120"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        phone = subprocess.run(["baresip", "-f", str(tmp_path / "caller"), "-e",
                                f"/dial sip:bot@127.0.0.1:{cluster.sip_ports[1]}", "-t", "60"],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)
    finally:
        agent.terminate()
        agent.communicate(timeout=10)
        post_json(f"{n1.url}/api/agents/alice/state", cluster.token, {"state": "offline"})
    assert "Call established" in phone.stdout, phone.stdout[-2000:]
    calls = get_json(f"{n1.url}/api/calls", cluster.token)[1]  # node 1 reads node 2's record (PostgreSQL)
    call_id = next(c["id"] for c in calls if c["channel"] == "sip")
    stored = record(cluster.pg.url, call_id)
    transfer = get_json(f"{n1.url}/api/calls/{call_id}/transfer", cluster.token)[1]
    assert stored["node_id"] == "n2" and stored["outcome"] == "handoff", (stored, n2.log())
    assert transfer["agent_id"] == "alice" and transfer["outcome"] == "answered", transfer
    whisper = transcribe(next((tmp_path / "agent_rec").glob("dump-*-dec.wav"))).lower()
    assert "person" in whisper or "human" in whisper, whisper  # the agent heard node 2's summary
    heard_by_caller, caller_rate = sf.read(str(next((tmp_path / "caller_rec").glob("dump-*-dec.wav"))), dtype="int16")
    assert frames_at(heard_by_caller, caller_rate, AGENT_HZ) > 100  # and the caller heard the agent
    # Alice is nobody's once her call and wrap-up are over (logged out: her claim given back).
    claims = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
    deadline = time.monotonic() + 30
    while claims.exists("voicebot:agent:alice") and time.monotonic() < deadline:
        time.sleep(0.2)  # polls the shared claim, bounded
    assert not claims.exists("voicebot:agent:alice")


def test_cluster_redis_down_10_s_during_a_call_loses_nothing(cluster, tmp_path: Path) -> None:
    n1, n2 = cluster.nodes
    wav = speech(tmp_path / "say.wav", 0.4, "I ordered a lamp yesterday and I want to know where my order is.", 5.0,
                 "Thank you, that is all. Goodbye.", 0.4)
    dashboard = Dashboard(n1.url, cluster.token)

    async def scenario() -> tuple[Any, float]:
        call = asyncio.create_task(place_call(n2.url, wav, tail_s=2.0, max_wait_s=30))
        await asyncio.to_thread(dashboard.wait_for, lambda e: e["type"] == "call.started", 30)
        cluster.redis.stop()
        down_at = time.time()
        await asyncio.sleep(10)  # the outage itself: its length is the point of the test
        cluster.redis.start()
        return await call, down_at

    result, down_at = asyncio.run(scenario())
    # The call went on while Redis was down: the bot answered both requests.
    bot_turns = [t for t in result.record["turns"] if t["speaker"] == "bot"]
    caller_turns = [t for t in result.record["turns"] if t["speaker"] == "caller"]
    assert len(caller_turns) >= 2 and len(bot_turns) >= 3, result.record["turns"]
    # Node 1's dashboard (still connected) gets everything that happened meanwhile once Redis is back.
    ended = dashboard.wait_for(lambda e: e["type"] == "call.ended" and e.get("call_id") == result.call_id, 60)
    stored = record(cluster.pg.url, result.call_id)
    assert stored["outcome"] == ended["outcome"] != "node_lost"
    turns = [e for e in dashboard.of_call(result.call_id) if e["type"] == "turn"]
    assert len(turns) == stored["turns"] and any(e["ts"] > down_at for e in turns)
    dashboard.close()
    # Neither node took the other for lost after the outage: both still beat.
    client = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
    deadline = time.monotonic() + 10
    while set(client.zrange("voicebot:nodes", 0, -1)) != {"n1", "n2"} and time.monotonic() < deadline:
        time.sleep(0.2)  # polls the shared set, bounded
    assert set(client.zrange("voicebot:nodes", 0, -1)) == {"n1", "n2"}


def test_cluster_node_killed_during_a_call_is_closed_node_lost_by_the_survivor(cluster, tmp_path: Path) -> None:
    n1, n2 = cluster.nodes
    wav = speech(tmp_path / "say.wav", 0.4, "I ordered a lamp yesterday and I want to know where my order is.", 20.0)
    dashboard = Dashboard(n1.url, cluster.token)

    async def scenario() -> str:
        call = asyncio.create_task(place_call(n2.url, wav, tail_s=2.0))
        started = await asyncio.to_thread(
            dashboard.wait_for, lambda e: e["type"] == "turn" and e["turn"]["speaker"] == "caller", 60)
        assert n2.pid is not None
        os.kill(n2.pid, signal.SIGKILL)
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        return str(started["call_id"])

    call_id = asyncio.run(scenario())
    ended = dashboard.wait_for(lambda e: e["type"] == "call.ended" and e.get("call_id") == call_id, 30)
    assert ended["outcome"] == "node_lost" and ended["node"] == "n1"  # closed by the survivor
    stored = record(cluster.pg.url, call_id)
    assert (stored["node_id"], stored["outcome"], stored["end_reason"]) == ("n2", "node_lost", "node_lost")
    status, live = get_json(f"{n1.url}/api/live", cluster.token)
    assert status == 200 and live == {"calls": []}
    dashboard.close()
    check_invariants(cluster)


def check_invariants(cluster: SimpleNamespace) -> None:
    """Over the shared state: every open call record belongs to a node that beats; the lost node is gone."""
    client = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
    alive = set(client.zrange("voicebot:nodes", 0, -1))
    assert alive == {"n1"}
    assert not client.keys("voicebot:lost:*")  # the survivor gave its lease back
    engine = create_engine(cluster.pg.url)
    try:
        with engine.connect() as conn:
            open_nodes = {n for (n,) in conn.execute(text('SELECT DISTINCT node_id FROM voicebot_calls WHERE "end" IS NULL'))}
    finally:
        engine.dispose()
    assert open_nodes <= alive


def test_cluster_survivor_keeps_a_lost_nodes_queued_callers_and_frees_its_agents(tmp_path: Path) -> None:
    """Two nodes in this process (their buses, stores, relays; Redis and a SQLite file real): node n9 has a caller
    waiting for an agent, one talking to the bot and agent alice ringing, then goes silent. Node n1 records the
    waiting caller's hand-off as ended `node_lost` (the queue's history keeps it), closes both call records
    `node_lost`, and alice comes free for n1 once n9's lease runs out."""
    from voicebot.cluster.redis_state import ClusterState, EventRelay, NodeWatch, RedisAgentClaims
    from voicebot.events import EventBus
    from voicebot.live import LiveCalls
    from voicebot.storage import CallStore
    from voicebot.storage.schema import upgrade

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = create_engine(url)
    upgrade(engine)

    async def scenario(redis_url: str) -> tuple[ClusterState, RedisAgentClaims, Any]:
        bus9, bus1 = EventBus("n9"), EventBus("n1")
        bus9.bind()
        bus1.bind()
        store9, store1 = CallStore(engine, bus9, node_id="n9"), CallStore(engine, bus1, node_id="n1")
        relay9 = EventRelay(bus9, redis_url, "n9")
        await relay9.start()
        claims9 = RedisAgentClaims(redis_url, "n9", lease_s=1.0)
        watch9 = NodeWatch(redis_url, "n9", store9, heartbeat_s=0.2, lost_after_s=1.0, claims=claims9)
        await watch9.beat()
        live1 = LiveCalls(bus1)
        live1.attach()
        survivor = ClusterState(bus1, store1, redis_url, "n1", heartbeat_s=0.2, lost_after_s=1.0, live=live1)
        await survivor.start()
        # Blocking calls (SQLite, the claims' Redis client) off the loop, as the product makes them.
        await asyncio.to_thread(store9.open_call, "waiting", "sip", "+15550001")
        await asyncio.to_thread(store9.open_call, "talking", "sip", "+15550002")
        bus9.publish("call.state", call_id="waiting", state="queued", queue="general")
        first = await asyncio.to_thread(claims9.claim, "alice", "waiting")
        assert first is not None  # n9 rings her
        assert await asyncio.to_thread(survivor.agents.claim, "alice", "talking") is None
        deadline = time.monotonic() + 10
        while getattr(live1.get("waiting"), "state", None) != "queued":
            assert time.monotonic() < deadline, live1.snapshot()
            await asyncio.sleep(0.05)  # n9's events arriving through Redis, bounded
        await relay9.close()  # n9 goes silent: no more beats, no lease renewal
        await watch9.close()
        while not survivor.nodes.lost:
            assert time.monotonic() < deadline + 10, "n9 was never declared lost"
            await asyncio.sleep(0.1)  # the survivor's beats, bounded
        while live1.calls:
            assert time.monotonic() < deadline + 15, live1.snapshot()
            await asyncio.sleep(0.05)  # its call.ended events reach its own live calls, bounded
        again = await asyncio.to_thread(survivor.agents.claim, "alice", "talking")  # n9's lease (1 s) ran out
        holders = await asyncio.to_thread(survivor.agents.holders)
        await survivor.close()
        await asyncio.to_thread(store1.close)
        await asyncio.to_thread(store9.close)
        return survivor, again, (first, holders)

    with RedisServer() as redis_server:
        survivor, again, (first, holders) = asyncio.run(scenario(redis_server.url))
    assert survivor.nodes.lost == [("n9", 2)]
    assert again is not None and again.token > first.token and holders == {"alice": ("n1", "talking", again.token)}
    with engine.connect() as conn:
        calls = conn.execute(text("SELECT id, node_id, outcome, end_reason FROM voicebot_calls ORDER BY id")).all()
        transfers = conn.execute(text("SELECT call_id, queue, outcome FROM voicebot_transfers")).all()
    engine.dispose()
    assert [tuple(c) for c in calls] == [("talking", "n9", "node_lost", "node_lost"),
                                         ("waiting", "n9", "node_lost", "node_lost")]
    assert [tuple(t) for t in transfers] == [("waiting", "general", "node_lost")]
