"""Run ``voicebot serve`` in a child process on a free loopback port (``voicebot bench``, tests, benchmarks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``with ServerProcess(workdir, config) as server: server.url`` — a server for the block's duration.

    ``config`` is written as ``voicebot.yaml`` in ``workdir`` (its database lives there too, unless the
    config names another). The server's log is ``workdir/server.log``.
    """

    def __init__(self, workdir: str | Path, config: dict[str, Any] | None = None, start_timeout_s: float = 120.0):
        self.workdir = Path(workdir)
        # SIP stays off unless asked for: tests and benchmarks run side by side and 5060 is one port.
        self.config = {
            "database": {"url": f"sqlite:///{self.workdir / 'voicebot.db'}"},
            "sip": {"enabled": False},
            **(config or {}),
        }
        # A local server is for trying the bot and for tests: the demo customers unless the config says otherwise.
        self.config["database"] = {"seed_demo": True, **self.config["database"]}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "server.log"
        self._timeout = start_timeout_s
        self._proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "voicebot.yaml"
        cfg.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes it for its whole life
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "voicebot", "serve", "--config", str(cfg), "--host", "127.0.0.1",
             "--port", str(self.port)],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"voicebot serve exited with {self._proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as res:
                    if json.loads(res.read()).get("status") == "ok":
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"voicebot serve did not answer within {self._timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (a test may kill it the hard way)."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
