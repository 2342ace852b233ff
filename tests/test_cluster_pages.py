"""Agent pages across the nodes of a cluster: two `voicebot serve` nodes on one PostgreSQL and one Redis.

A browser caller (aiortc) on node 1 asks for a person; the agent page logged in on node 2 (headless Chromium, its
microphone a 3000 Hz tone) is rung over an internal SIP leg from node 1 to node 2 (``sip:page-alice@NODE2``),
answers by itself, hears node 1's whisper and then the caller, and the caller hears the page; node 1 keeps the call
record (``handoff``, agent alice, transfer ``answered``). A page on node 2 that declines: node 1 offers the caller
to the next agent (bob, whose page is on node 1); so does a page on node 2 whose browser closes while it rings (480). A
page that was closed is no longer in the shared registry and node 1 rings the next agent without dialling node 2. Bad input: an INVITE to ``page-*`` from outside the cluster
is refused 403 (logged); from a cluster node, for a page this node does not hold, 404."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import redis
from auth_helpers import add_user, login
from browser_helpers import agent_phone, with_microphone
from cluster_helpers import PostgresServer, RedisServer, needs_cluster, node_config
from net_helpers import free_port, rtp_ports, sip_port
from test_transfer_live import AGENT_HZ, frames_at
from test_transfer_webrtc_caller import RATE, browser_call, closed_record, speech

from audio.speech import write_wav
from dialogs.db.engine import ensure_database
from dialogs.db.times import utc_now
from telephony.config import SipConfig
from telephony.sip.ua import DialError, UserAgent
from voicebot.client.local_server import ServerProcess
from voicebot.storage.schema import prepare

pytestmark = [
    pytest.mark.slow,
    needs_cluster,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]

AGENTS = ("alice", "bob")
PAGE_GONE_S = 15.0  # a node learns that a page vanished when its events websocket closes (at once)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    base = tmp_path_factory.mktemp("cluster-pages")
    with RedisServer() as redis_server, PostgresServer() as pg:
        nodes: list[ServerProcess] = []
        sip_ports = [sip_port(), sip_port()]
        try:
            prepare(pg.url)  # the schema and demo data once, as `voicebot cluster up` makes them
            ensure_database(pg.url, seed_demo=True, now=utc_now()).dispose()
            for i in (1, 2):
                port = sip_ports[i - 1]
                config = node_config(f"n{i}", redis_server.url, pg.url, call={"greeting": "Hello, how can I help?"},
                                     agents=[{"id": a, "contact": "webrtc"} for a in AGENTS],
                                     queues=[{"name": "general", "agent_timeout": 15, "max_wait": 90}],
                                     sip={"enabled": True, "listen_udp": f"127.0.0.1:{port}",
                                          "listen_tcp": f"127.0.0.1:{port}", **rtp_ports(200)})
                nodes.append(ServerProcess(base / f"n{i}", config, start_timeout_s=600))  # a loaded machine
            with ThreadPoolExecutor(len(nodes)) as pool:  # the nodes load their models side by side
                for started in [pool.submit(node.start) for node in nodes]:
                    started.result()
            for agent in AGENTS:
                add_user(pg.url, agent, "agent")
            add_user(pg.url, "sup", "supervisor")
            t = np.arange(120 * RATE) / RATE
            mic = write_wav(base / "mic.wav", (0.3 * np.sin(2 * np.pi * AGENT_HZ * t)).astype(np.float32), RATE)
            yield SimpleNamespace(redis=redis_server, pg=pg, nodes=nodes, sip_ports=sip_ports, mic=mic,
                                  sup=login(nodes[0].url, "sup"))
        finally:
            for node in nodes:
                node.stop()


def get_json(url: str, headers: dict[str, str]) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as res:
        return json.loads(res.read())


def post_json(url: str, headers: dict[str, str], body: Any) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as res:
            return res.status
    except urllib.error.HTTPError as exc:
        return exc.code


def until(check: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)  # polls shared state, bounded by the deadline
    return check()


def page_node(cluster: SimpleNamespace, agent: str) -> str | None:
    """The node the shared registry says holds ``agent``'s page."""
    return redis.Redis.from_url(cluster.redis.url, decode_responses=True).get(f"voicebot:page:{agent}")


def available_everywhere(cluster: SimpleNamespace, agent: str) -> bool:
    return all(get_json(f"{n.url}/api/agents/{agent}", cluster.sup)["state"] == "available" for n in cluster.nodes)


def all_offline(cluster: SimpleNamespace) -> None:
    for agent in AGENTS:
        post_json(f"{cluster.nodes[0].url}/api/agents/{agent}/state", cluster.sup, {"state": "offline"})


def call_from_node_1(cluster: SimpleNamespace) -> tuple[str, np.ndarray]:
    """A browser caller on node 1 asks for a person and listens until it heard an agent's tone for 2 s."""
    caller = np.concatenate([speech("I want to speak to a human."), np.zeros(60 * RATE, np.int16)])
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API keeps an event loop in this thread
        call_id, heard, _ = pool.submit(lambda: asyncio.run(
            browser_call(cluster.nodes[0].url, caller, max_s=90, hang_up_on=AGENT_HZ))).result()
    return call_id, heard


def test_cluster_caller_on_node_1_is_warm_transferred_to_the_agent_page_on_node_2(cluster) -> None:
    from playwright.sync_api import sync_playwright

    n1, n2 = cluster.nodes
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=with_microphone(cluster.mic))
        try:
            page = browser.new_page()
            agent_phone(page, n2.url, "alice")  # logged in, available, the page her phone: on node 2
            assert until(lambda: page_node(cluster, "alice") == "n2")
            assert until(lambda: available_everywhere(cluster, "alice"))
            with ThreadPoolExecutor(1) as pool:
                call = pool.submit(call_from_node_1, cluster)
                # Her page on node 2 shows node 1's hand-off packet (relayed) and follows the call to connected.
                page.wait_for_function("() => document.getElementById('summary').textContent.includes('person')",
                                       timeout=90_000)
                page.wait_for_function("() => document.getElementById('callstatus').textContent === '(connected)'",
                                       timeout=60_000)
                connected_controls = page.eval_on_selector_all("[data-control]:not([hidden])",
                                                               "els => els.map(e => e.dataset.control)")
                call_id, heard = call.result(timeout=150)
            whisper_heard = page.evaluate("window.remoteLoud")
        finally:
            browser.close()
            all_offline(cluster)
    record = closed_record(n1.url, call_id, cluster.sup)
    log1, log2 = n1.log(), n2.log()

    assert frames_at(heard, RATE, AGENT_HZ) >= 100, log1  # the caller on node 1 heard the page on node 2
    assert whisper_heard >= 10, f"the page heard {whisper_heard} loud 100 ms windows (the whisper)"
    assert record["outcome"] == "handoff" and record["agent_id"] == "alice", (record, log1)
    assert record["transfer"]["agent_id"] == "alice" and record["transfer"]["outcome"] == "answered"
    assert record["transfer"]["talk_s"] > 0
    assert "ringing alice's page on node n2" in log1
    assert connected_controls == ["hangup"], connected_controls
    assert "SIP: INVITE" in log2 and "dialled page-alice" in log2  # the internal leg reached node 2
    # The page went away with the browser: the registry forgets it once the node notices (its websocket closed).
    assert until(lambda: page_node(cluster, "alice") is None, PAGE_GONE_S)


def test_cluster_page_on_node_2_declines_and_node_1_offers_the_caller_to_the_next_agent(cluster) -> None:
    from playwright.sync_api import sync_playwright

    n1, n2 = cluster.nodes
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=with_microphone(cluster.mic))
        try:
            alice = browser.new_page()
            agent_phone(alice, n2.url, "alice")
            alice.uncheck("#autoanswer")  # she declines this one herself
            assert until(lambda: available_everywhere(cluster, "alice"))
            bob = browser.new_page()
            agent_phone(bob, n1.url, "bob")  # idle for less time than alice: offered second
            assert until(lambda: page_node(cluster, "alice") == "n2" and page_node(cluster, "bob") == "n1")
            assert until(lambda: available_everywhere(cluster, "bob"))
            with ThreadPoolExecutor(1) as pool:
                call = pool.submit(call_from_node_1, cluster)
                # Alice's page on node 2 rings with node 1's call and shows its buttons; she declines.
                alice.wait_for_function("() => document.getElementById('callstatus').textContent === '(ringing)'",
                                        timeout=60_000)
                alice.wait_for_selector("#decline:not([hidden])", timeout=10_000)
                alice.click("#decline")
                call_id, heard = call.result(timeout=150)
        finally:
            browser.close()
            all_offline(cluster)
    record = closed_record(n1.url, call_id, cluster.sup)
    log1 = n1.log()

    assert "agent alice not reached: 603" in log1, log1
    assert frames_at(heard, RATE, AGENT_HZ) >= 100, log1  # bob's page took the call
    assert record["outcome"] == "handoff" and record["agent_id"] == "bob", (record, log1)
    assert record["transfer"]["agent_id"] == "bob" and record["transfer"]["outcome"] == "answered"


def test_cluster_page_on_node_2_closed_while_it_rings_sends_the_caller_to_the_next_agent(cluster) -> None:
    from playwright.sync_api import sync_playwright

    n1, n2 = cluster.nodes
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=with_microphone(cluster.mic))
        try:
            alice_context = browser.new_context()
            alice = alice_context.new_page()
            agent_phone(alice, n2.url, "alice")
            alice.uncheck("#autoanswer")  # she lets it ring (agent_timeout 15 s)
            assert until(lambda: available_everywhere(cluster, "alice"))
            bob = browser.new_page()
            agent_phone(bob, n1.url, "bob")
            assert until(lambda: page_node(cluster, "alice") == "n2" and page_node(cluster, "bob") == "n1")
            assert until(lambda: available_everywhere(cluster, "bob"))
            with ThreadPoolExecutor(1) as pool:
                call = pool.submit(call_from_node_1, cluster)
                alice.wait_for_function("() => document.getElementById('callstatus').textContent === '(ringing)'",
                                        timeout=60_000)
                alice_context.close()  # her browser is gone while node 1's call rings her page on node 2
                bob.wait_for_function("() => document.getElementById('callstatus').textContent === '(connected)'",
                                      timeout=10_000)  # before her 15 s ring would have timed out
                call_id, heard = call.result(timeout=150)
            gone = page_node(cluster, "alice")
        finally:
            browser.close()
            all_offline(cluster)
    record = closed_record(n1.url, call_id, cluster.sup)
    log1 = n1.log()

    assert "agent alice not reached: 480" in log1, log1  # node 2 answered the internal INVITE 480: the page is gone
    assert gone is None  # and the registry no longer holds her page
    assert record["agent_id"] == "bob" and record["transfer"]["outcome"] == "answered", (record, log1)


def test_cluster_a_closed_page_is_not_rung_from_another_node(cluster) -> None:
    from playwright.sync_api import sync_playwright

    n1, n2 = cluster.nodes
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=with_microphone(cluster.mic))
        try:
            alice = browser.new_page()
            agent_phone(alice, n2.url, "alice")
            assert until(lambda: page_node(cluster, "alice") == "n2")
            alice.close()  # her page is gone; she is still logged in (available) in the ACDs
            assert until(lambda: page_node(cluster, "alice") is None, PAGE_GONE_S)
            bob = browser.new_page()
            agent_phone(bob, n1.url, "bob")
            assert until(lambda: available_everywhere(cluster, "alice") and available_everywhere(cluster, "bob"))
            invites_before = n2.log().count("dialled page-alice")
            call_id, heard = call_from_node_1(cluster)
        finally:
            browser.close()
            all_offline(cluster)
    record = closed_record(n1.url, call_id, cluster.sup)
    log1 = n1.log()

    assert record["agent_id"] == "bob" and record["transfer"]["outcome"] == "answered", (record, log1)
    assert frames_at(heard, RATE, AGENT_HZ) >= 100, log1
    assert n2.log().count("dialled page-alice") == invites_before  # node 2 was never dialled for alice
    assert "agent alice not reached: 480" in log1, log1


def dial(target: str, port: int) -> int:
    """Dial ``target`` from our own SIP user agent on ``port``; the SIP status (200 if it answered)."""

    async def main() -> int:
        ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{port}", listen_tcp=None, **rtp_ports(100)))
        await ua.start()
        try:
            leg = await ua.dial(target, ring_timeout=10)
            await leg.hangup()
            return 200
        except DialError as exc:
            return exc.status
        finally:
            await ua.stop()

    return asyncio.run(main())


def test_cluster_page_invites_from_outside_the_cluster_are_refused_and_unknown_pages_are_not_found(cluster) -> None:
    n2 = cluster.nodes[1]
    target = f"sip:page-alice@127.0.0.1:{cluster.sip_ports[1]}"
    # From an address that is no node of the cluster: 403, logged.
    assert dial(target, free_port(socket.SOCK_DGRAM)) == 403
    assert until(lambda: "refused (403)" in n2.log(), 5), n2.log()[-3000:]
    # From a cluster node's address (a node "t9" that beats now), for a page node 2 does not hold: 404.
    port = free_port(socket.SOCK_DGRAM)
    shared = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
    seconds, micros = shared.time()
    shared.hset("voicebot:node-sip", "t9", f"127.0.0.1:{port}")
    shared.zadd("voicebot:nodes", {"t9": seconds + micros / 1e6})
    try:
        assert dial(target, port) == 404
        assert dial(f"sip:page-nobody@127.0.0.1:{cluster.sip_ports[1]}", port) == 404
    finally:
        shared.zrem("voicebot:nodes", "t9")
        shared.hdel("voicebot:node-sip", "t9")
    # The registry holds ids and addresses only: no caller's data.
    for key in shared.scan_iter("voicebot:page:*"):
        assert shared.get(key) in {"n1", "n2"}
    assert set(shared.hgetall("voicebot:node-sip").values()) <= {f"127.0.0.1:{p}" for p in cluster.sip_ports}


def test_cluster_page_registry_follows_pages_and_forgets_a_dead_nodes_pages() -> None:
    """The registry on a real Redis: a page is found on its node while that node beats and renews; dropped when
    the page goes; lapses when its node stops renewing (died); a page connected again on another node wins."""
    from voicebot.cluster.pages import PageRegistry

    with RedisServer() as server:
        shared = redis.Redis.from_url(server.url, decode_responses=True)

        def beat(node: str) -> None:
            seconds, micros = shared.time()
            shared.zadd("voicebot:nodes", {node: seconds + micros / 1e6})

        a = PageRegistry(server.url, "na", "127.0.0.1:5071", lease_s=1.0)
        b = PageRegistry(server.url, "nb", "127.0.0.1:5072", lease_s=1.0)
        for registry in (a, b):
            beat(registry.node_id)
            registry.renew()
        assert a.node_addresses() == {"127.0.0.1:5071", "127.0.0.1:5072"}
        b.put("alice")
        assert a.where("alice") == ("nb", "127.0.0.1:5072")
        shared.set("voicebot:agent:alice", "na call-7 12")  # node a's claim of alice for its caller
        assert b.call_of("alice") == "call-7"
        b.drop("alice")
        assert a.where("alice") is None
        # A node that stops renewing (dead): its page lapses with the lease.
        b.put("alice")
        assert until(lambda: a.where("alice") is None, 5)
        # Renewed by its heartbeat, it stays; the agent's newer page on node a takes over, and b does not undo it.
        b.put("bob")
        a.put("bob")
        b.renew()
        assert b.where("bob") == ("na", "127.0.0.1:5071")
        shared.zrem("voicebot:nodes", "na")  # node a counts as gone: its pages are not dialled
        assert b.where("bob") is None and a.node_addresses() == {"127.0.0.1:5072"}


def test_cluster_page_call_answer_accept_keys_and_hangup_reach_the_calling_node(cluster) -> None:
    """A cluster node (our own user agent, known to Redis as node "t9") dials alice's page on node 2: the page
    rings with the buttons answer/decline, answers (the SIP answer), then its Accept and Decline reach the calling
    node as keys 1 and 2 (what a queue with ``agent_confirm`` reads), and its Hang up ends the internal leg."""
    from playwright.sync_api import sync_playwright

    n2 = cluster.nodes[1]
    port = free_port(socket.SOCK_DGRAM)
    shared = redis.Redis.from_url(cluster.redis.url, decode_responses=True)
    alice = login(n2.url, "alice")

    def view() -> dict[str, Any]:
        return get_json(f"{n2.url}/api/agents/alice", alice)

    async def node_t9() -> tuple[list[str], list[str], list[str], str]:
        ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{port}", listen_tcp=None, **rtp_ports(100)))
        await ua.start()
        try:
            seconds, micros = shared.time()
            shared.hset("voicebot:node-sip", "t9", f"127.0.0.1:{port}")
            shared.zadd("voicebot:nodes", {"t9": seconds + micros / 1e6})
            dialled = asyncio.ensure_future(ua.dial(f"sip:page-alice@127.0.0.1:{cluster.sip_ports[1]}",
                                                    ring_timeout=30))
            assert await asyncio.to_thread(until, lambda: (view().get("current") or {}).get("status") == "ringing")
            ringing = (await asyncio.to_thread(view))["controls"]
            assert await asyncio.to_thread(post_json, f"{n2.url}/api/agents/alice/answer", alice, {}) == 200
            leg = await dialled
            keys: list[str] = []
            leg.add_dtmf_listener(keys.append)
            assert await asyncio.to_thread(until, lambda: (view().get("current") or {}).get("status") == "answered")
            answered = (await asyncio.to_thread(view))["controls"]
            for action in ("accept", "decline"):
                assert await asyncio.to_thread(post_json, f"{n2.url}/api/agents/alice/{action}", alice, {}) == 200
            await asyncio.to_thread(until, lambda: len(keys) >= 2, 10)
            assert await asyncio.to_thread(post_json, f"{n2.url}/api/agents/alice/hangup", alice, {}) == 200
            reason = await asyncio.wait_for(leg.wait_ended(), 10)
            return ringing, answered, keys, reason
        finally:
            shared.zrem("voicebot:nodes", "t9")
            shared.hdel("voicebot:node-sip", "t9")
            await ua.stop()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=with_microphone(cluster.mic))
        try:
            page = browser.new_page()
            agent_phone(page, n2.url, "alice")
            page.uncheck("#autoanswer")  # answered through the API below
            with ThreadPoolExecutor(1) as pool:  # Playwright's sync API keeps an event loop in this thread
                ringing, answered, keys, reason = pool.submit(lambda: asyncio.run(node_t9())).result(timeout=120)
        finally:
            browser.close()
            all_offline(cluster)

    assert ringing == ["answer", "decline"], ringing
    assert answered == ["accept", "decline"], answered
    assert keys == ["1", "2"], (keys, n2.log()[-3000:])
    assert reason == "remote hangup", reason
