"""A cluster on loopback for the tests (``voicebot cluster up`` / ``down`` as a user runs them), the nodes'
metrics, and sipp callers through the cluster's SIP front.

Also the services one by one, for tests that stop and start them (tests/test_cluster_state.py):

    with RedisServer() as redis, PostgresServer() as pg:
        node = ServerProcess(dir, node_config("n1", redis.url, pg.url)).start()

Redis keeps an append-only file there, so a Redis stopped and started again (:meth:`RedisServer.stop` /
:meth:`RedisServer.start`) has what it had, as a production Redis would.

:class:`SharedCluster` is the one 3-node cluster of tests/test_cluster_front.py and tests/test_cluster_queue.py
(the ``shared_cluster`` fixture of tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from call_models import CALL_FLOW_MODELS
from net_helpers import free_port, sip_port

from voicebot.cluster.launcher import sip_options_ok

SIPP_SCENARIOS = Path(__file__).parent / "sipp"


def cluster_programs_missing() -> str | None:
    """Why a cluster cannot start here (a Debian package missing), else None."""
    for program, package in (("kamailio", "kamailio"), ("redis-server", "redis-server"), ("sipp", "sip-tester")):
        if shutil.which(program) is None and not Path(f"/usr/sbin/{program}").exists():
            return f"{program} not installed (apt-get install {package})"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return "PostgreSQL not installed (apt-get install postgresql)"
    return None


needs_cluster = pytest.mark.skipif(cluster_programs_missing() is not None,
                                   reason=cluster_programs_missing() or "")


@dataclass(frozen=True)
class ClusterNode:
    node_id: str
    http: str
    sip: str
    pid: int


@dataclass(frozen=True)
class Cluster:
    """What `voicebot cluster up --json` printed."""

    base_dir: Path
    kamailio: str
    postgres_url: str
    redis_url: str
    nodes: tuple[ClusterNode, ...]


@contextmanager
def running_cluster(base_dir: Path, nodes: int, config: Path | None = None,
                    timeout: float = 400) -> Iterator[Cluster]:
    """`voicebot cluster up --nodes N --json` for the block, `voicebot cluster down` after it."""
    args = [sys.executable, "-m", "voicebot", "cluster"]
    config_args = ["--config", str(config)] if config else []
    res = subprocess.run([*args, "up", "--nodes", str(nodes), "--base-dir", str(base_dir), "--json", *config_args],
                         capture_output=True, text=True, timeout=timeout)
    try:
        assert res.returncode == 0, f"cluster up failed:\n{res.stderr}"
        data = json.loads(res.stdout)
        yield Cluster(base_dir, data["kamailio"], data["postgres_url"], data["redis_url"],
                      tuple(ClusterNode(**n) for n in data["nodes"]))
    finally:
        subprocess.run([*args, "down", "--base-dir", str(base_dir), "--purge"], capture_output=True, text=True,
                       timeout=120)


# The shared cluster's voicebot.yaml: callers (sipp on loopback) come from a trunk whose asserted identity is
# believed; agent alice (never logged in, so callers asking for a person wait); silence never ends a test's call.
SHARED_CLUSTER_CONFIG = """\
trunks:
  - name: carrier
    host: 127.0.0.1
call:
  silence_prompt_s: 60
  silence_hangup_s: 60
agents:
  - id: alice
    contact: sip:alice@127.0.0.1:9
queues:
  - name: general
    max_wait: 300
    announce_every: 0
"""


@dataclass(frozen=True)
class _NodeLaunch:
    """How `cluster up` started a node: what starts it again."""

    cmdline: list[str]
    env: dict[str, str]
    cwd: str

    @classmethod
    def of(cls, pid: int) -> _NodeLaunch:
        proc = Path(f"/proc/{pid}")
        env = dict(item.split("=", 1) for item in (proc / "environ").read_bytes().decode().split("\0") if "=" in item)
        return cls((proc / "cmdline").read_bytes().decode().split("\0")[:-1], env, os.readlink(proc / "cwd"))


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


class SharedCluster:
    """One `voicebot cluster up` for several test modules, so its set-up (PostgreSQL, Redis, the nodes loading
    their models, Kamailio) is paid once. A test may kill a node: :meth:`ready` starts it again as an operator
    would (the command, environment and folder `cluster up` gave it) once the survivors have counted it lost, and
    returns when Kamailio routes calls to every node again."""

    def __init__(self, base_dir: Path, nodes: int, config_text: str):
        self.base_dir = base_dir
        self.nodes = nodes
        self.config_text = config_text
        self._stack = ExitStack()
        self._launches: dict[str, _NodeLaunch] = {}
        self._revived: list[subprocess.Popen] = []
        self.revivals = 0

    def __enter__(self) -> SharedCluster:
        config = self.base_dir / "voicebot.yaml"
        config.write_text(self.config_text)
        cluster = self._stack.enter_context(running_cluster(self.base_dir / "run", self.nodes, config))
        self._launches = {n.node_id: _NodeLaunch.of(n.pid) for n in cluster.nodes}
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the cluster (a second call does nothing)."""
        self._stack.close()  # `cluster down` stops the nodes started again too (their pids are in cluster.json)
        for proc in self._revived:
            proc.wait(30)
        self._revived.clear()

    def ready(self) -> Cluster:
        """The cluster with every node up (started again if a test killed it)."""
        from voicebot.cluster.launcher import ClusterInfo

        info = ClusterInfo.load(self.base_dir / "run")
        assert info is not None, f"no cluster state in {self.base_dir / 'run'}"
        dead = [node for node in info.nodes if not _alive(node.pid)]
        for node in dead:
            self._wait_counted_lost(info.redis_url, node.node_id)
            node.pid = self._start_again(node.node_id, node.http, node.sip)
            info.save()
        cluster = Cluster(Path(info.base_dir), info.kamailio, info.postgres_url, info.redis_url,
                          tuple(ClusterNode(n.node_id, n.http, n.sip, n.pid) for n in info.nodes))
        if dead:
            self._wait_routed_to_every_node(cluster)
            self.revivals += 1
        return cluster

    def _wait_counted_lost(self, redis_url: str, node_id: str) -> None:
        # A node that starts again beats again; before that the survivors close its calls (node_lost) and drop it.
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        deadline = time.monotonic() + 60
        while client.zscore("voicebot:nodes", node_id) is not None:
            assert time.monotonic() < deadline, f"the survivors never counted {node_id} lost"
            time.sleep(0.2)  # polls the shared set of nodes, bounded

    def _start_again(self, node_id: str, http: str, sip: str) -> int:
        launch = self._launches[node_id]
        with open(self.base_dir / "run" / f"{node_id}.log", "ab") as log:
            proc = subprocess.Popen(launch.cmdline, env=launch.env, cwd=launch.cwd, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self._revived.append(proc)
        deadline = time.monotonic() + 300
        while not (_http_ok(http + "/healthz") and sip_options_ok(sip)):
            assert proc.poll() is None, f"{node_id} exited with {proc.returncode} when started again"
            assert time.monotonic() < deadline, f"{node_id} did not answer within 300 s when started again"
            time.sleep(0.2)  # polls a node loading its models, bounded
        return proc.pid

    def _wait_routed_to_every_node(self, cluster: Cluster) -> None:
        """Kamailio probes the nodes every second and routes to one again once it answers: a round of one call
        per node through Kamailio (call-load balancing gives each node one) shows it does."""
        count = len(cluster.nodes)
        deadline = time.monotonic() + 90
        attempt = 0
        while True:
            attempt += 1
            before = {n.node_id: sip_calls_ended(n) for n in cluster.nodes}
            workdir = self.base_dir / f"probe{attempt}"
            workdir.mkdir()
            sipp_result(sipp(workdir, "uac_cluster_call.xml", cluster.kamailio, "-s", "bot", "-m", str(count),
                             "-r", str(count), "-d", "3000", "-l", str(count)))
            ended: dict[str, int] = {}
            while time.monotonic() < deadline:
                ended = {n.node_id: sip_calls_ended(n) - before[n.node_id] for n in cluster.nodes}
                if sum(ended.values()) >= count:
                    break
                time.sleep(0.5)  # polls the nodes' /metrics until the round's calls are recorded, bounded
            if all(ended.get(n.node_id, 0) >= 1 for n in cluster.nodes):
                return
            assert time.monotonic() < deadline, f"Kamailio does not route to every node again: {ended}"


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def metric(node: ClusterNode, name: str, labels: str = "") -> float:
    """The sum of a Prometheus sample ``name{...labels...}`` on ``node``'s /metrics (0 if absent)."""
    with urllib.request.urlopen(node.http + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.eE+-]+)$", line)
        if m and labels in (m.group(1) or ""):
            total += float(m.group(2))
    return total


def sip_calls_ended(node: ClusterNode) -> int:
    return int(metric(node, "voicebot_calls_total", 'channel="sip"'))


def sipp(workdir: Path, scenario: str, target: str, *args: str, timeout: float = 180) -> subprocess.Popen:
    """Start sipp (an independent SIP peer) with ``scenario`` against ``target``; the caller waits for it."""
    cmd = ["sipp", target, "-sf", str(SIPP_SCENARIOS / scenario), "-i", "127.0.0.1", "-nostdin",
           "-trace_err", "-recv_timeout", "15000", *args]
    return subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def sipp_result(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/usr/lib/postgresql/15/bin"))


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # polls the port, bounded by the deadline
    raise RuntimeError(f"{what} did not listen on {port} within {timeout_s} s")


class RedisServer:
    """A redis-server on a free loopback port with its data in a temporary folder."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="voicebot-redis-"))
        self.port = free_port(socket.SOCK_STREAM)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self._proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "no"],
            stdout=open(self.dir / "redis.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        _wait_port(self.port, self._proc, "redis-server")
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(20)
        self._proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _wait_postgres(port: int, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    # Listening is not ready: while it starts up PostgreSQL refuses connections ("the database system is starting
    # up"), for seconds on a loaded machine; pg_isready says when it accepts them.
    _wait_port(port, proc, "postgres", timeout_s)
    deadline = time.monotonic() + timeout_s
    while subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode != 0:
        assert proc.poll() is None, f"postgres on {port} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"postgres on {port} did not accept connections within {timeout_s} s"
        time.sleep(0.1)  # polls pg_isready, bounded by the deadline


class PostgresServer:
    """A PostgreSQL cluster (initdb, trust on loopback) on a free port, run as the ``postgres`` user when root."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="voicebot-pg-"))
        self.data = self.dir / "data"
        self.port = free_port(socket.SOCK_STREAM)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._proc: subprocess.Popen | None = None
        self._user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> PostgresServer:
        if self._user:
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        if not self.data.exists():
            subprocess.run([*self._user, str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                            "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
        self._proc = subprocess.Popen(
            [*self._user, str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=open(self.dir / "postgres.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        _wait_postgres(self.port, self._proc)
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(30)
        self._proc = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def node_config(node_id: str, redis_url: str, database_url: str, **sections: Any) -> dict[str, Any]:
    """A bot node's voicebot.yaml for ServerProcess: the shared database and Redis, quick heartbeats, the call-flow
    tests' recogniser."""
    return {
        "database": {"url": database_url, "seed_demo": True},
        "models": CALL_FLOW_MODELS,
        "cluster": {"node_id": node_id, "redis_url": redis_url, "heartbeat_s": 0.5, "node_lost_after_s": 3.0},
        **sections,
    }


def check_queue_invariants(redis_url: str, alive: set[str]) -> None:
    """Over the shared queue: every waiting entry belongs to a node that beats and has its details (a live lease),
    no call waits twice, and every queue's counters are whole where they count callers."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    members = [str(m) for m in client.zrange("voicebot:queue:waiting", 0, -1)]
    calls = [json.loads(m)[0] for m in members]
    assert len(calls) == len(set(calls)), members
    for member in members:
        call_id, node, _queue, _since = json.loads(member)
        assert node in alive, f"caller {call_id} still waits on node {node}, not alive ({alive})"
        assert client.exists(f"voicebot:queue:entry:{call_id}"), f"caller {call_id} waits without a lease"
    for key in client.scan_iter("voicebot:queue:stats:*"):
        stats: dict[str, str] = client.hgetall(key)  # type: ignore[assignment]
        for name, value in stats.items():
            assert float(value) >= 0, (key, name, value)
            if not name.endswith("_total"):
                assert float(value) == int(float(value)), (key, name, value)


def stop_cluster_postgres(cluster: Cluster) -> list[str]:
    """Stop the PostgreSQL of a cluster `voicebot cluster up` started (fast shutdown, as `down` does); returns its
    command line for :func:`start_cluster_postgres`."""
    from voicebot.cluster.launcher import ClusterInfo

    info = ClusterInfo.load(cluster.base_dir)
    assert info is not None and "postgres" in info.pids, f"no cluster state in {cluster.base_dir}"
    pid = info.pids["postgres"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    os.killpg(pid, 2)  # SIGINT: PostgreSQL's fast shutdown
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] == "Z":
                break
        except OSError:
            break
        time.sleep(0.1)  # waiting for PostgreSQL to exit, bounded
    return cmdline


def start_cluster_postgres(cluster: Cluster, cmdline: list[str]) -> None:
    """Start the cluster's PostgreSQL again with ``cmdline`` (its data kept); `cluster down` stops the new one."""
    from voicebot.cluster.launcher import ClusterInfo

    user = "postgres" if os.geteuid() == 0 else None
    with open(cluster.base_dir / "postgres.log", "ab") as log:
        proc = subprocess.Popen(cmdline, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, user=user,
                                start_new_session=True)
    info = ClusterInfo.load(cluster.base_dir)
    assert info is not None
    info.pids["postgres"] = proc.pid
    info.save()
    port = int(cmdline[cmdline.index("-p") + 1])
    _wait_postgres(port, proc)


def _port_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound for UDP and TCP (no process holds it)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


class KamailioFront:
    """Kamailio alone, with a config voicebot.cluster.kamailio generates from ``front`` (FrontConfig's fields), for
    tests of the front's own checks: no PostgreSQL, Redis or bot node (a sipp UAS at ``nodes`` can stand in for
    one). ``env`` is Kamailio's environment (where it reads passwords from)."""

    def __init__(self, run_dir: Path, nodes: tuple[int, ...] = (), env: dict[str, str] | None = None,
                 **front: Any) -> None:
        from voicebot.cluster.kamailio import FrontConfig, Node

        self.dir = run_dir
        self.port = sip_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.nodes = [Node(f"n{i}", "127.0.0.1", port) for i, port in enumerate(nodes, start=1)]
        self.config = FrontConfig("127.0.0.1", self.port, run_dir / "dispatcher.list", run_dir=run_dir, children=2,
                                  **front)
        self._proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "kamailio.log"

    def start(self) -> KamailioFront:
        from voicebot.cluster.kamailio import dispatcher_list, render, write_registration_table

        self.dir.mkdir(parents=True, exist_ok=True)
        self.config.dispatcher_list.write_text(dispatcher_list(self.nodes))
        if self.config.registrations:
            write_registration_table(self.dir)
        cfg = self.dir / "kamailio.cfg"
        cfg.write_text(render(self.config))
        check = subprocess.run(["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert check.returncode == 0, f"the generated config does not load:\n{check.stderr[-3000:]}"
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(["kamailio", "-f", str(cfg), "-DD", "-E", "-Y", str(self.dir), "-w",
                                           str(self.dir)], stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        deadline = time.monotonic() + 30
        while not sip_options_ok(self.address):
            assert self._proc.poll() is None, f"kamailio exited:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"kamailio did not answer OPTIONS:\n{self.log()[-3000:]}"
            time.sleep(0.1)  # polls the front we just started, bounded by the deadline
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, pattern: str, timeout_s: float = 20.0) -> str:
        """The first line of Kamailio's log matching ``pattern`` once it appears (AssertionError after timeout_s)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for line in self.log().splitlines():
                if re.search(pattern, line):
                    return line
            assert time.monotonic() < deadline, f"no line matching {pattern!r} in kamailio's log:\n{self.log()[-3000:]}"
            time.sleep(0.1)  # polls the log for a line Kamailio writes, bounded by the deadline

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, 15)
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, 9)
                self._proc.wait(5)
        self._proc = None

    def restart(self) -> None:
        """Kamailio crashes (SIGKILL to its process group: nothing is flushed or said goodbye) and a new one starts
        on the same port with the same config and environment, as systemd or compose would; returns once the old
        one's ports are free again and the new one answers OPTIONS."""
        assert self._proc is not None, "the front is not running"
        os.killpg(self._proc.pid, 9)
        self._proc.wait(15)
        self._proc = None
        deadline = time.monotonic() + 15
        while not _port_free(self.port):
            assert time.monotonic() < deadline, f"port {self.port} still taken after kamailio was killed"
            time.sleep(0.05)  # polls the port the killed children release, bounded by the deadline
        self.start()

    def __enter__(self) -> KamailioFront:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
