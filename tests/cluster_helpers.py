"""The services of a cluster on loopback for tests: Redis, PostgreSQL and bot nodes, each on its own ports.

    with RedisServer() as redis, PostgresServer() as pg:
        node = ServerProcess(dir, node_config("n1", redis.url, pg.url)).start()

Until ``voicebot cluster up`` (engineer front) lands, the tests start the services here themselves. Redis keeps
an append-only file, so a Redis stopped and started again (:meth:`RedisServer.stop` / :meth:`start`) has what it
had, as a production Redis would.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from net_helpers import free_port

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
        _wait_port(self.port, self._proc, "postgres")
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
    """A bot node's voicebot.yaml for ServerProcess: the shared database and Redis, quick heartbeats."""
    return {
        "database": {"url": database_url, "seed_demo": True},
        "cluster": {"node_id": node_id, "redis_url": redis_url, "heartbeat_s": 0.5, "node_lost_after_s": 3.0},
        **sections,
    }
