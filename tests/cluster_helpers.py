"""A cluster on loopback for the tests (``voicebot cluster up`` / ``down`` as a user runs them), the nodes'
metrics, and sipp callers through the cluster's SIP front."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

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
