"""Ports for the tests' own servers and peers (SIP, RTP, HTTP) on loopback.

Every test takes its ports from here, never a fixed number, so that pytest-xdist workers running side by side never
collide: single ports are bound to port 0 (the kernel hands out one free right now, from its ephemeral range 32768+),
RTP ranges come from a block of ports each worker has for itself (:func:`rtp_ports`)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A loopback port free right now for ``kind`` (UDP by default; ``socket.SOCK_STREAM`` for TCP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sip_port() -> int:
    """A loopback port free for both UDP and TCP (the bot listens for SIP on both)."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no loopback port is free for both UDP and TCP")


# The RTP blocks lie below the kernel's ephemeral ports (which free_port() hands out) and above the product's default
# range 20000-20999 (which the `voicebot serve` of tests without an RTP setting use): worker gwN has block N % 4.
_RTP_FIRST, _RTP_BLOCK, _RTP_BLOCKS = 21000, 2800, 4
_rtp_next = 0


def _worker_index() -> int:
    """This pytest-xdist worker's number (gw1 -> 1); 0 without xdist."""
    number = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    return int(number) if number.isdigit() else 0


def rtp_ports(size: int = 100) -> dict[str, int]:
    """A fresh RTP port range of ``size`` ports as SipConfig's ``rtp_port_min`` / ``rtp_port_max``.

    It lies in this worker's own block, so no other worker binds or sprays there; consecutive calls get disjoint
    ranges until the block wraps around (the earlier tests have closed theirs by then; a port still bound is skipped
    by the RTP session anyway). Call it when the test starts, not at import."""
    global _rtp_next
    if size < 2 or size % 2 or size > _RTP_BLOCK:
        raise ValueError(f"an RTP range of {size} ports: want an even size from 2 to {_RTP_BLOCK}")
    if _rtp_next + size > _RTP_BLOCK:
        _rtp_next = 0
    first = _RTP_FIRST + (_worker_index() % _RTP_BLOCKS) * _RTP_BLOCK + _rtp_next
    _rtp_next += size
    return {"rtp_port_min": first, "rtp_port_max": first + size - 1}


@contextmanager
def serve_app(app: Any, **config: Any) -> Iterator[str]:
    """Run an ASGI ``app`` on uvicorn in a thread on a free loopback port for the block; yields its base URL."""
    import uvicorn

    port = free_port(socket.SOCK_STREAM)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)  # polls uvicorn's own started flag, bounded by the deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
