"""The cluster's SIP front: 3 bot nodes behind Kamailio with PostgreSQL and Redis, started by
`voicebot cluster up` (the cluster shared with tests/test_cluster_queue.py: tests/conftest.py), called by sipp (an
independent SIP peer) through Kamailio.

Calls are spread over every node (dispatcher call-load balancing), the caller's asserted number survives the relay,
and when one node is killed (-9) new calls are answered by the others within 5 s."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster_helpers import (
    Cluster,
    KamailioFront,
    SharedCluster,
    needs_cluster,
    sip_calls_ended,
    sipp,
    sipp_result,
)
from net_helpers import sip_port
from sqlalchemy import create_engine, text

from telephony.config import TrunkConfig
from voicebot.cluster.kamailio import FrontConfig, Node, dispatcher_list, render, trusted_from_trunks

pytestmark = [needs_cluster, pytest.mark.timeout(900)]


@pytest.fixture
def cluster(shared_cluster: SharedCluster) -> Cluster:
    """The shared cluster (tests/conftest.py), every node up. Its callers (sipp on loopback) come from a trunk whose
    asserted identity is believed."""
    return shared_cluster.ready()


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)  # polls the nodes' /metrics, bounded by the deadline


def answer_times_ms(workdir: Path) -> list[float]:
    """sipp's -trace_rtt per-call times from INVITE to 200 (ms), from its *_rtt.csv."""
    times: list[float] = []
    for path in workdir.glob("*_rtt.csv"):
        for line in path.read_text().splitlines()[1:]:
            fields = line.split(";")
            if len(fields) >= 3 and fields[2].strip() == "answer":
                times.append(float(fields[1]))
    return times


def test_cluster_front_config_from_trunks(tmp_path: Path) -> None:
    """Trunk addresses become Kamailio's trusted sources; only trunks trusted for identity keep their PAI."""
    trunks = [TrunkConfig(name="carrier", host="192.0.2.10"),
              TrunkConfig(name="pbx", host="pbx.example", allowed_ips=["10.1.0.0/16"], trust_asserted_identity=False)]
    trusted, identity = trusted_from_trunks(trunks)
    assert trusted == ("192.0.2.10/32", "10.1.0.0/16") and identity == ("192.0.2.10/32",)
    assert trusted_from_trunks([]) == (("127.0.0.0/8", "::1/128"), ())
    cfg = render(FrontConfig("127.0.0.1", 5070, tmp_path / "dispatcher.list", trusted=trusted,
                             trusted_identity=identity))
    assert 'is_in_subnet("$si", "10.1.0.0/16")' in cfg and 'ds_select_dst("1", "10")' in cfg
    assert 'modparam("dispatcher", "ds_ping_interval", 1)' in cfg and "pike_check_req()" in cfg
    tls = render(FrontConfig("127.0.0.1", 5070, tmp_path / "dispatcher.list", tls_port=5071,
                             tls_config=tmp_path / "tls.cfg"))
    assert "listen=tls:127.0.0.1:5071" in tls and 'loadmodule "tls.so"' in tls and "enable_tls=yes" in tls
    with pytest.raises(ValueError, match="needs tls_config"):
        render(FrontConfig("127.0.0.1", 5070, tmp_path / "dispatcher.list", tls_port=5071))
    listing = dispatcher_list([Node("n1", "127.0.0.1", 5071), Node("n2", "127.0.0.1", 5072, max_calls=20)])
    assert "1 sip:127.0.0.1:5072 0 0 duid=n2;maxload=20" in listing


def test_cluster_calls_are_spread_over_all_nodes(cluster: Cluster, tmp_path: Path) -> None:
    before = {n.node_id: sip_calls_ended(n) for n in cluster.nodes}
    code, out = sipp_result(sipp(tmp_path, "uac_cluster_call.xml", cluster.kamailio, "-s", "bot", "-m", "20",
                                 "-r", "3", "-d", "2500", "-l", "20"))
    assert code == 0, f"sipp: some of the 20 calls through Kamailio failed:\n{out[-3000:]}"

    def all_recorded() -> bool:
        return sum(sip_calls_ended(n) for n in cluster.nodes) - sum(before.values()) >= 20

    wait_for(all_recorded, 60, "the 20 calls to be recorded by the nodes")
    per_node = {n.node_id: sip_calls_ended(n) - before[n.node_id] for n in cluster.nodes}
    assert sum(per_node.values()) == 20, per_node
    assert all(count > 0 for count in per_node.values()), f"a node answered no call: {per_node}"
    # The caller's asserted number survives the relay through Kamailio, which the nodes believe as their trunk
    # (the call records in PostgreSQL).
    engine = create_engine(cluster.postgres_url)
    try:
        with engine.connect() as conn:
            callers = set(conn.execute(text("SELECT caller_id FROM contacts WHERE channel = 'sip'")).scalars())
    finally:
        engine.dispose()
    assert {f"777{i}" for i in range(1, 21)} <= callers


def test_cluster_new_calls_are_answered_within_5_s_after_a_node_is_killed(cluster: Cluster, tmp_path: Path) -> None:
    # Calls in progress on every node when one of them dies.
    busy = tmp_path / "busy"
    busy.mkdir()
    long_calls = sipp(busy, "uac_cluster_call.xml", cluster.kamailio, "-s", "bot", "-m", "3", "-r", "3",
                      "-d", "6000")
    victim, survivors = cluster.nodes[1], (cluster.nodes[0], cluster.nodes[2])
    wait_for(lambda: all(_active(n) >= 1 for n in cluster.nodes), 30, "a call on every node")
    before = {n.node_id: sip_calls_ended(n) for n in survivors}
    os.kill(victim.pid, signal.SIGKILL)
    after_kill = tmp_path / "after"
    after_kill.mkdir()
    code, out = sipp_result(sipp(after_kill, "uac_cluster_call.xml", cluster.kamailio, "-s", "bot", "-m", "8",
                                 "-r", "2", "-d", "1000", "-trace_rtt", "-rtt_freq", "1"))
    sipp_result(long_calls)  # the dead node's call fails; the others end normally
    assert code == 0, f"sipp: calls after the kill failed:\n{out[-3000:]}"
    times = answer_times_ms(after_kill)
    assert len(times) == 8 and max(times) < 5000, times
    wait_for(lambda: sum(sip_calls_ended(n) - before[n.node_id] for n in survivors) >= 8, 60,
             "the survivors to record the 8 new calls")


def test_cluster_front_drops_a_request_flood_from_one_source_and_recovers(cluster: Cluster) -> None:
    """pike: one source sending far more than 100 requests per 2 s is dropped, and heard again once it calms."""
    host, port = cluster.kamailio.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        local = s.getsockname()[1]

        def options(i: int) -> bytes:
            return (f"OPTIONS sip:{cluster.kamailio} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bKf{i}\r\n"
                    f"Max-Forwards: 70\r\nFrom: <sip:flood@127.0.0.1>;tag=f{i}\r\nTo: <sip:{cluster.kamailio}>\r\n"
                    f"Call-ID: flood-{i}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()

        def answered(count: int, wait: float) -> int:
            for i in range(count):
                s.sendto(options(i), (host, int(port)))
            s.settimeout(wait)
            got = 0
            try:
                while True:
                    if s.recv(65535).startswith(b"SIP/2.0 200"):
                        got += 1
            except TimeoutError:
                return got

        flood = answered(600, 2.0)
        assert 0 < flood < 400, f"{flood} of 600 flooded requests answered"
        deadline = time.monotonic() + 30
        while answered(1, 1.0) != 1:
            assert time.monotonic() < deadline, "the source stayed blocked after the flood stopped"


def _active(node) -> float:  # type: ignore[no-untyped-def]
    from cluster_helpers import metric

    return metric(node, "voicebot_active_calls", 'channel="sip"')


def _processes_under(path: Path) -> list[str]:
    """Command lines of running processes that mention ``path`` (what a cluster under it started)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmdline:
                found.append(cmdline)
    return found


def test_cluster_up_refuses_a_busy_sip_port_and_down_names_a_folder_without_a_cluster(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "voicebot", "cluster", "up", "--nodes", "1", "--base-dir",
                              str(tmp_path / "c"), "--sip-port", str(port)], capture_output=True, text=True)
    assert res.returncode == 1 and f"port {port}/udp on 127.0.0.1 is busy" in res.stderr, res.stderr
    res = subprocess.run([sys.executable, "-m", "voicebot", "cluster", "down", "--base-dir", str(tmp_path / "c")],
                         capture_output=True, text=True)
    assert res.returncode == 1 and "nothing was started there" in res.stderr, res.stderr


def test_cluster_up_that_fails_at_a_node_stops_what_it_started(tmp_path: Path) -> None:
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"models:\n  stt:\n    model: {tmp_path / 'no-such-model'}\n")
    base = tmp_path / "c"
    res = subprocess.run([sys.executable, "-m", "voicebot", "cluster", "up", "--nodes", "1", "--base-dir", str(base),
                          "--config", str(config)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr
    assert "n1 exited with status" in res.stderr and "everything it had started is stopped" in res.stderr
    assert "postgres" in res.stderr and "ready" in res.stderr  # it had got as far as the nodes
    assert not (base / "cluster.json").exists()
    assert _processes_under(base) == []
    # PostgreSQL's data may live outside the base folder (see the launcher): its port must be closed too.
    ports = [int(p) for p in re.findall(r"(?:postgres +|redis://)127\.0\.0\.1:(\d+)", res.stderr)]
    assert len(ports) == 2, res.stderr
    for port in ports:
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers after the failed up"


def test_cluster_kamailio_config_command_writes_a_config_kamailio_accepts(tmp_path: Path) -> None:
    config = tmp_path / "voicebot.yaml"
    config.write_text("trunks:\n  - name: carrier\n    host: 192.0.2.10\n    dids:\n      '100': {greeting: Hi}\n")
    res = subprocess.run([sys.executable, "-m", "voicebot", "cluster", "kamailio-config", "--config", str(config),
                          "--listen", "192.0.2.5:5080", "--also-listen", "127.0.0.1", "--advertise", "203.0.113.7",
                          "--node", "n1=127.0.0.1:5071", "--node", "n2=127.0.0.1:5072", "--out", str(tmp_path / "f")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    cfg = (tmp_path / "f" / "kamailio.cfg").read_text()
    assert "listen=udp:192.0.2.5:5080 advertise 203.0.113.7:5080" in cfg and 'is_in_subnet("$si", "192.0.2.10/32")' in cfg
    kamailio = shutil.which("kamailio") or "/usr/sbin/kamailio"
    check = subprocess.run([kamailio, "-c", "-f", str(tmp_path / "f" / "kamailio.cfg")], capture_output=True, text=True)
    assert check.returncode == 0 and "config file ok" in check.stdout + check.stderr, check.stderr[-2000:]
    res = subprocess.run([sys.executable, "-m", "voicebot", "cluster", "kamailio-config", "--listen", "127.0.0.1:5080",
                          "--node", "n1", "--out", str(tmp_path / "g")], capture_output=True, text=True)
    assert res.returncode == 2 and "expected ID=HOST:PORT" in res.stderr, res.stderr


@pytest.mark.parametrize("secret", [True, False], ids=["with-secret", "without-secret"])
def test_cluster_front_keeps_a_calls_dialog_across_its_restart(tmp_path: Path, secret: bool) -> None:
    """A call in through the front to a node (two SIP user agents, no cluster), then Kamailio killed (-9) and
    started again on the same port with the same config and environment. With the cluster's secret the front knows
    the dialog by the signature in its Route: the caller's re-INVITE reaches the node and the node's BYE the caller
    (both directions of the dialog), each answered.
    Without it the front knows its dialogs from memory only: the re-INVITE before the restart passes, the one after
    gets 481, and the log says what to set."""
    from telephony.call import CallLeg
    from telephony.config import SipConfig
    from telephony.leg import CallError
    from telephony.sip.ua import UserAgent

    secret_env = "VOICEBOT_CLUSTER_SECRET"
    node_port = sip_port()
    front = KamailioFront(tmp_path / "front", (node_port,), env={secret_env: "cluster-Secret-42"})
    if not secret:
        front.env.pop(secret_env, None)
    node_legs: list[CallLeg] = []

    async def answer(leg: CallLeg) -> None:
        node_legs.append(leg)
        await leg.answer()
        await leg.ended.wait()

    def sip(port: int) -> SipConfig:
        return SipConfig(listen_udp=f"127.0.0.1:{port}", listen_tcp=f"127.0.0.1:{port}", no_media_timeout_s=0)

    async def call() -> None:
        node = UserAgent(sip(node_port), on_call=answer)
        caller = UserAgent(sip(sip_port()))
        await node.start()  # before the front, whose first OPTIONS probe it answers
        await caller.start()
        try:
            await asyncio.to_thread(front.start)
            leg = await caller.dial(f"sip:bot@{front.address}", ring_timeout=10)
            await leg.hold()  # a re-INVITE through the front that set the call up
            await asyncio.to_thread(front.restart)
            if not secret:
                with pytest.raises(CallError, match="481"):
                    await leg.unhold()
                return
            await leg.unhold()
            # The node hangs up: its BYE goes the other way (the caller's tag is in To), and the caller answers it.
            await node_legs[0].hangup()
            await asyncio.wait_for(leg.ended.wait(), 10)
            assert leg.end_reason == "remote hangup"
        finally:
            await caller.stop()
            await node.stop()

    try:
        asyncio.run(call())
        log = front.log()
    finally:
        front.stop()
    assert len(node_legs) == 1
    if secret:
        assert "refused" not in log, log[-3000:]
        assert "cluster-Secret-42" not in log
    else:
        assert re.search(rf"INVITE from 127\.0\.0\.1:\d+ for a dialog the front does not know .* refused: without "
                         rf"{secret_env} .the cluster's secret. in its environment the front knows only the dialogs "
                         "set up since it started", log), log[-3000:]
