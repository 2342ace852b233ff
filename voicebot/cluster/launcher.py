"""``voicebot cluster up`` / ``down``: PostgreSQL, Redis, N bot nodes and Kamailio on loopback, from the Debian
packages, each in its own folder under one base directory, with the addresses written to ``cluster.json``.

Every process is started in a session of its own and recorded in ``cluster.json`` the moment it starts, so
``down`` stops whatever a failed or interrupted ``up`` left behind.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voicebot.cluster.kamailio import (
    Node,
    agent_credentials,
    dispatcher_list,
    front_config,
    inbound_auth_from_trunks,
    open_registration_warning,
    outbound_from_trunks,
    registrations_from_trunks,
    write_front,
)

if TYPE_CHECKING:
    from voicebot.config import Settings

STATE_FILE = "cluster.json"
LOOPBACK = "127.0.0.1"
RTP_PORTS_PER_NODE = 200
START_TIMEOUT_S = 180.0  # a node loads Whisper and Piper and synthesises its fixed prompts before it answers

Progress = Callable[[str], None]


class LaunchError(Exception):
    """A cluster that could not be started or stopped; the message says what and how to fix it."""


@dataclass
class NodeInfo:
    node_id: str
    http: str
    sip: str
    pid: int


@dataclass
class ClusterInfo:
    """What ``cluster.json`` holds: the addresses of every part, and the pids ``down`` stops."""

    base_dir: str
    kamailio: str = ""
    postgres_url: str = ""
    redis_url: str = ""
    nodes: list[NodeInfo] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # postgres, redis, kamailio

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, base_dir: Path) -> ClusterInfo | None:
        path = base_dir / STATE_FILE
        if not path.exists():
            return None
        data = json.loads(path.read_text())
        nodes = [NodeInfo(**n) for n in data.pop("nodes", [])]
        return cls(nodes=nodes, **data)

    def save(self) -> None:
        path = Path(self.base_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)


@dataclass(frozen=True)
class Binaries:
    postgres: Path
    initdb: Path
    pg_isready: Path
    createdb: Path
    redis: Path
    kamailio: Path


def find_binaries() -> Binaries:
    """The Debian packages' programs; a clear error naming the package to install when one is missing."""
    missing = []
    pg_dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name)
                     if p.parent.name.isdigit() else 0)
    pg_bin = pg_dirs[-1] if pg_dirs else None
    if pg_bin is None or not (pg_bin / "initdb").exists():
        missing.append("PostgreSQL (initdb, postgres in /usr/lib/postgresql/*/bin): apt-get install postgresql")
    redis = shutil.which("redis-server")
    if redis is None:
        missing.append("redis-server: apt-get install redis-server")
    kamailio = shutil.which("kamailio") or ("/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None)
    if kamailio is None:
        missing.append("kamailio: apt-get install kamailio")
    if missing:
        raise LaunchError("missing program(s):\n  " + "\n  ".join(missing))
    assert pg_bin is not None and redis is not None and kamailio is not None
    return Binaries(pg_bin / "postgres", pg_bin / "initdb", pg_bin / "pg_isready", pg_bin / "createdb",
                    Path(redis), Path(kamailio))


def free_port(kinds: tuple[int, ...] = (socket.SOCK_STREAM,)) -> int:
    """A loopback port free right now for every socket kind in ``kinds``."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kinds[0]) as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        if all(port_free(port, kind) for kind in kinds[1:]):
            return port
    raise LaunchError("no free loopback port found")


def port_free(port: int, kind: int = socket.SOCK_STREAM) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _check_port(what: str, port: int, kinds: tuple[int, ...]) -> None:
    for kind in kinds:
        if not port_free(port, kind):
            proto = "udp" if kind == socket.SOCK_DGRAM else "tcp"
            raise LaunchError(f"{what}: port {port}/{proto} on {LOOPBACK} is busy (choose another, or stop what "
                              "listens there)")


def _rtp_ranges(count: int) -> list[tuple[int, int]]:
    """Disjoint RTP port ranges, one per node, in 30000-59999 (the single-node default is 20000-20999)."""
    start = random.randrange(30000, 60000 - count * RTP_PORTS_PER_NODE, 2)
    return [(start + i * RTP_PORTS_PER_NODE, start + (i + 1) * RTP_PORTS_PER_NODE - 1) for i in range(count)]


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


class _Launch:
    def __init__(self, base_dir: Path, progress: Progress):
        self.base = base_dir
        self.progress = progress
        self.info = ClusterInfo(base_dir=str(base_dir))
        self.procs: dict[str, subprocess.Popen] = {}

    def spawn(self, name: str, cmd: list[str], log: Path, *, env: dict[str, str] | None = None,
              cwd: Path | None = None, user: str | None = None) -> subprocess.Popen:
        with log.open("ab") as out:
            try:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, cwd=cwd, user=user, start_new_session=True)
            except OSError as exc:
                raise LaunchError(f"{name}: cannot start {cmd[0]}: {exc.strerror or exc}") from None
        self.procs[name] = proc
        return proc

    def wait_until(self, name: str, log: Path, ready: Callable[[], bool], timeout: float) -> float:
        """Seconds until ``ready()``; a clear error with the end of the log if the process dies or times out."""
        proc = self.procs[name]
        start = time.monotonic()
        while not ready():
            if proc.poll() is not None:
                raise LaunchError(f"{name} exited with status {proc.returncode} while starting; the end of "
                                  f"{log}:\n{_log_tail(log)}")
            if time.monotonic() - start > timeout:
                raise LaunchError(f"{name} did not become ready within {timeout:.0f} s; the end of {log}:\n"
                                  f"{_log_tail(log)}")
            time.sleep(0.2)  # polling a process we just started, bounded by the timeout
        return time.monotonic() - start

    def step(self, name: str, where: str, seconds: float) -> None:
        self.progress(f"{name:<10} {where:<42} ready ({seconds:.1f} s)")


def up(nodes: int, base_dir: Path, config_path: Path | None = None, *, sip_port: int | None = None,
       progress: Progress = print) -> ClusterInfo:
    """Start the cluster and wait until every part answers; raises :class:`LaunchError` (after stopping what
    it had started) if a part cannot start."""
    from voicebot.config import ConfigError, load_settings

    if nodes < 1:
        raise LaunchError("--nodes must be at least 1")
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise LaunchError(str(exc)) from None
    config_file = settings.source
    _check_front(settings)
    bins = find_binaries()
    base_dir = base_dir.resolve()
    existing = ClusterInfo.load(base_dir)
    if existing is not None and any(_alive(pid) for pid in _all_pids(existing)):
        raise LaunchError(f"a cluster started from {base_dir} is still running: `voicebot cluster down "
                          f"--base-dir {base_dir}` first")
    if sip_port is not None:
        _check_port("kamailio", sip_port, (socket.SOCK_DGRAM, socket.SOCK_STREAM))
    base_dir.mkdir(parents=True, exist_ok=True)
    launch = _Launch(base_dir, progress)
    try:
        _start(launch, bins, settings, config_file, nodes, sip_port)
    except BaseException:
        launch.info.save()
        down(base_dir, progress=lambda line: None)
        _remove_data_dir(base_dir / "pg")
        raise
    launch.info.save()
    return launch.info


def _check_front(settings: Settings) -> None:
    """A clear error, before anything starts, when a password the SIP front needs is missing from the
    environment (Kamailio would refuse every attempt, or register with an empty password), or a trunk wants
    what the front on loopback cannot do (registration over TLS)."""
    try:
        registrations = registrations_from_trunks(settings.trunks)
    except ValueError as exc:
        raise LaunchError(f"kamailio: {exc}") from None
    for reg in registrations:
        if reg.transport == "tls":
            raise LaunchError(f"kamailio: trunk {reg.trunk} registers over TLS, and the SIP front `voicebot cluster "
                              "up` starts has no TLS (use `voicebot cluster kamailio-config --tls-port --tls-config`)")
    names = [r.password_env for r in registrations]
    names += [c.password_env for c in (*inbound_auth_from_trunks(settings.trunks), *agent_credentials(settings.agents))]
    # The front answers the trunks' challenges to the nodes' calls out with these passwords.
    names += [t.password_env for t in outbound_from_trunks(settings.trunks) if t.password_env]
    unset = sorted({name for name in names if name not in os.environ})
    if unset:
        raise LaunchError(f"kamailio: environment variable(s) {', '.join(unset)} not set (passwords of the trunks "
                          "and agent phones the SIP front registers, checks or calls out through)")


def _start(launch: _Launch, bins: Binaries, settings: Settings, config_file: Path | None, count: int,
           sip_port: int | None) -> None:
    base, info = launch.base, launch.info
    env = dict(os.environ)
    secret_env = settings.cluster.secret_env
    if not env.get(secret_env):
        # Kamailio and the nodes share it through their environment only: never in a file, never printed.
        env[secret_env] = secrets.token_urlsafe(24)
        launch.progress(f"{'secret':<10} {secret_env} unset: a random cluster secret for this run, in the environment "
                        f"of Kamailio and the nodes only (set {secret_env} to dial out by hand with `voicebot dial "
                        "--trunk` on this machine)")

    # PostgreSQL refuses to run as root: then it runs as the Debian package's `postgres` user.
    pg_user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise LaunchError("PostgreSQL cannot run as root and there is no `postgres` user "
                              "(apt-get install postgresql creates it)") from None
        pg_user = "postgres"
    pg_dir, pg_log, pg_port = base / "pg", base / "postgres.log", free_port()
    _remove_data_dir(pg_dir)  # a fresh database per `up`: the cluster on loopback is for trying and testing
    if pg_user is not None:
        os.chmod(base, os.stat(base).st_mode | 0o011)
        if subprocess.run(["test", "-x", str(base)], user=pg_user).returncode:
            # The postgres user cannot reach the base folder (a private parent such as root's temp folders):
            # its data lives in a folder of its own under /tmp, linked from the base folder.
            pg_dir.symlink_to(tempfile.mkdtemp(prefix="voicebot-cluster-pg-"))
        else:
            pg_dir.mkdir(mode=0o700)
        entry = pwd.getpwnam(pg_user)
        os.chown(pg_dir.resolve(), entry.pw_uid, entry.pw_gid)
    else:
        pg_dir.mkdir(mode=0o700)
    pg_dir = pg_dir.resolve()
    launch.progress(f"{'postgres':<10} initdb {pg_dir}")
    res = subprocess.run([str(bins.initdb), "-D", str(pg_dir), "-U", "voicebot", "--auth=trust", "-E", "UTF8",
                          "--no-instructions"], capture_output=True, text=True, user=pg_user)
    if res.returncode:
        raise LaunchError(f"postgres: initdb failed:\n{res.stdout}{res.stderr}")
    proc = launch.spawn("postgres", [str(bins.postgres), "-D", str(pg_dir), "-p", str(pg_port), "-k", str(pg_dir),
                                     "-c", f"listen_addresses={LOOPBACK}", "-c", "max_connections=200"],
                        pg_log, user=pg_user)
    info.pids["postgres"] = proc.pid
    info.save()
    seconds = launch.wait_until("postgres", pg_log, lambda: subprocess.run(
        [str(bins.pg_isready), "-q", "-h", LOOPBACK, "-p", str(pg_port)]).returncode == 0, 60)
    res = subprocess.run([str(bins.createdb), "-h", LOOPBACK, "-p", str(pg_port), "-U", "voicebot", "voicebot"],
                         capture_output=True, text=True)
    if res.returncode:
        raise LaunchError(f"postgres: createdb failed: {res.stderr.strip()}")
    info.postgres_url = f"postgresql+psycopg://voicebot@{LOOPBACK}:{pg_port}/voicebot"
    launch.step("postgres", f"{LOOPBACK}:{pg_port}", seconds)

    redis_dir, redis_log, redis_port = base / "redis", base / "redis.log", free_port()
    redis_dir.mkdir(exist_ok=True)
    proc = launch.spawn("redis", [str(bins.redis), "--bind", LOOPBACK, "--port", str(redis_port), "--dir",
                                  str(redis_dir), "--appendonly", "yes", "--save", "", "--daemonize", "no"],
                        redis_log)
    info.pids["redis"] = proc.pid
    info.save()
    seconds = launch.wait_until("redis", redis_log, lambda: _redis_ping(redis_port), 30)
    info.redis_url = f"redis://{LOOPBACK}:{redis_port}/0"
    launch.step("redis", info.redis_url, seconds)

    # The schema once, before any node starts (nodes do not upgrade: database.auto_upgrade off for them).
    db_env = {**env, "VOICEBOT_DATABASE__URL": info.postgres_url}
    config_args = ["--config", str(config_file)] if config_file else []
    start = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "voicebot", "db", "upgrade", *config_args], env=db_env,
                         capture_output=True, text=True)
    if res.returncode:
        raise LaunchError(f"voicebot db upgrade failed:\n{res.stdout}{res.stderr}")
    if settings.database.seed_demo:
        from dialogs.db.engine import ensure_database
        from dialogs.db.times import utc_now

        ensure_database(info.postgres_url, seed_demo=True, now=utc_now()).dispose()
    launch.step("schema", "voicebot db upgrade" + (" + demo data" if settings.database.seed_demo else ""),
                time.monotonic() - start)

    kam_port = sip_port or free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
    nodes: list[Node] = []
    dids = {did: route.model_dump() for trunk in settings.trunks for did, route in trunk.dids.items()}
    # Nodes take calls from Kamailio only, and believe its P-Asserted-Identity (it removes that of untrusted
    # sources): the front is the one trunk the nodes take calls from; the real trunks are Kamailio's, and the nodes
    # know them only to call out through the front.
    front_trunk = {"name": "front", "host": LOOPBACK, "port": kam_port, "allowed_ips": [f"{LOOPBACK}/32"],
                   "trust_asserted_identity": True, "dids": dids}
    logs: dict[str, Path] = {}
    for i, (rtp_min, rtp_max) in enumerate(_rtp_ranges(count), start=1):
        node_id = f"n{i}"
        node_dir = base / node_id
        node_dir.mkdir(exist_ok=True)
        http_port, sip = free_port(), free_port((socket.SOCK_DGRAM, socket.SOCK_STREAM))
        node_env = {
            **env,
            "VOICEBOT_DATABASE__URL": info.postgres_url,
            "VOICEBOT_DATABASE__AUTO_UPGRADE": "false",
            "VOICEBOT_DATABASE__SEED_DEMO": "false",
            "VOICEBOT_CLUSTER__NODE_ID": node_id,
            "VOICEBOT_CLUSTER__REDIS_URL": info.redis_url,
            "VOICEBOT_SIP__LISTEN_UDP": f"{LOOPBACK}:{sip}",
            "VOICEBOT_SIP__LISTEN_TCP": f"{LOOPBACK}:{sip}",
            "VOICEBOT_SIP__LISTEN_TLS": "",
            "VOICEBOT_SIP__RTP_PORT_MIN": str(rtp_min),
            "VOICEBOT_SIP__RTP_PORT_MAX": str(rtp_max),
            # The real trunks too, for calls out: the node sends those to the front (cluster.sip_front).
            "VOICEBOT_TRUNKS": json.dumps([front_trunk, *(t.model_dump(mode="json", by_alias=True)
                                                          for t in settings.trunks)]),
            "VOICEBOT_CLUSTER__SIP_FRONT": f"{LOOPBACK}:{kam_port}",
        }
        log = logs[node_id] = base / f"{node_id}.log"
        proc = launch.spawn(node_id, [sys.executable, "-m", "voicebot", "serve", *config_args, "--host", LOOPBACK,
                                      "--port", str(http_port)], log, env=node_env, cwd=node_dir)
        info.nodes.append(NodeInfo(node_id, f"http://{LOOPBACK}:{http_port}", f"{LOOPBACK}:{sip}", proc.pid))
        nodes.append(Node(node_id, LOOPBACK, sip, settings.sip.max_calls))
        info.save()
        launch.progress(f"{node_id:<10} {'starting ' + info.nodes[-1].http:<42} (sip {LOOPBACK}:{sip})")
    for node in info.nodes:
        def answers(n: NodeInfo = node) -> bool:
            return _http_ok(n.http + "/healthz") and sip_options_ok(n.sip)

        seconds = launch.wait_until(node.node_id, logs[node.node_id], answers, START_TIMEOUT_S)
        launch.step(node.node_id, f"{node.http}  sip {node.sip}", seconds)

    kam_dir = base / "kamailio"
    kam_dir.mkdir(exist_ok=True)
    (base / "dispatcher.list").write_text(dispatcher_list(nodes))
    # Trunk registration and digest checks happen here, at the front (the nodes' one trunk is Kamailio); Kamailio
    # reads the passwords and the cluster's secret from the environment it is given.
    try:
        cfg = front_config(settings.trunks, settings.agents, LOOPBACK, kam_port, base / "dispatcher.list", kam_dir,
                           node_secret_env=secret_env)
        launch.progress(f"{'kamailio':<10} warning: {open_registration_warning(cfg)}")
        write_front(cfg, base / "kamailio.cfg")
    except ValueError as exc:
        raise LaunchError(f"kamailio: {exc}") from None
    kam_log = base / "kamailio.log"
    check = subprocess.run([str(bins.kamailio), "-c", "-f", str(base / "kamailio.cfg")], capture_output=True,
                           text=True)
    if check.returncode:
        raise LaunchError(f"kamailio: the generated {base / 'kamailio.cfg'} does not load:\n{check.stderr[-2000:]}")
    proc = launch.spawn("kamailio", [str(bins.kamailio), "-f", str(base / "kamailio.cfg"), "-DD", "-E",
                                     "-Y", str(kam_dir), "-w", str(kam_dir)], kam_log, env=env)
    info.pids["kamailio"] = proc.pid
    info.save()
    info.kamailio = f"{LOOPBACK}:{kam_port}"
    seconds = launch.wait_until("kamailio", kam_log, lambda: sip_options_ok(info.kamailio), 30)
    launch.step("kamailio", f"sip:{info.kamailio}  ({count} node(s) in dispatcher)", seconds)


def down(base_dir: Path, *, purge: bool = False, progress: Progress = print, timeout: float = 15.0) -> int:
    """Stop every process ``cluster.json`` under ``base_dir`` names (front first, database last); returns how
    many were running. ``purge`` also removes the base folder with its databases and logs."""
    base_dir = base_dir.resolve()
    info = ClusterInfo.load(base_dir)
    if info is None:
        raise LaunchError(f"no {STATE_FILE} in {base_dir}: nothing was started there")
    order = [("kamailio", info.pids.get("kamailio"))]
    order += [(n.node_id, n.pid) for n in info.nodes]
    order += [("redis", info.pids.get("redis")), ("postgres", info.pids.get("postgres"))]
    stopped = 0
    for name, pid in order:
        if pid is None:
            continue
        if not _alive(pid):
            progress(f"{name:<10} not running")
            continue
        # Fast shutdown for PostgreSQL (SIGINT); the others end on SIGTERM.
        _signal_group(pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # waiting for a process to exit, bounded
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
        stopped += 1
        progress(f"{name:<10} stopped (pid {pid})")
    (base_dir / STATE_FILE).unlink(missing_ok=True)
    if purge:
        _remove_data_dir(base_dir / "pg")
        shutil.rmtree(base_dir, ignore_errors=True)
    return stopped


def _remove_data_dir(path: Path) -> None:
    """Remove a data folder, or the folder a link of that name points to and the link."""
    if path.is_symlink():
        shutil.rmtree(path.resolve(), ignore_errors=True)
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _all_pids(info: ClusterInfo) -> list[int]:
    return [*info.pids.values(), *(n.pid for n in info.nodes)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group the launcher made for ``pid`` (start_new_session), else the process alone."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def sip_options_ok(hostport: str, timeout: float = 1.0) -> bool:
    """True if a SIP UDP OPTIONS to ``hostport`` gets a 200."""
    host, port = hostport.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        s.settimeout(timeout)
        lport = s.getsockname()[1]
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        msg = (f"OPTIONS sip:{hostport} SIP/2.0\r\nVia: SIP/2.0/UDP {LOOPBACK}:{lport};branch={branch};rport\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:launcher@{LOOPBACK}>;tag={branch[-8:]}\r\nTo: <sip:{hostport}>\r\n"
               f"Call-ID: {branch}@{LOOPBACK}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        try:
            s.sendto(msg.encode(), (host, int(port)))
            data = s.recv(65535)
        except OSError:
            return False
    return data.startswith(b"SIP/2.0 200")
