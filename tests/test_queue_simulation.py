"""The throughput benchmark's simulation as a test: every caller is accounted for exactly once."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest

_path = Path(__file__).resolve().parent.parent / "benchmarks" / "queue_throughput.py"
_spec = importlib.util.spec_from_file_location("queue_throughput", _path)
assert _spec and _spec.loader
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def args(**over: object) -> argparse.Namespace:
    base = dict(callers=20, agents=3, seed=1, strategy="longest_idle", arrival=50.0, handle=120.0, patience=300.0,
                ring_delay=4.0, miss=0.05, back=60.0, agent_timeout=15.0, wrap_up=10.0, max_wait=600.0,
                service_level=20.0)
    return argparse.Namespace(**{**base, **over})


@pytest.mark.parametrize("strategy", ["longest_idle", "round_robin", "ring_all"])
def test_every_caller_is_handled_abandoned_or_timed_out(strategy: str) -> None:
    out = bench.simulate(args(strategy=strategy, arrival=20.0, max_wait=200.0))
    assert out["handled"] + out["abandoned"] + out["timed_out"] == 20
    assert out["handled"] >= 1 and out["p95_wait_s"] >= out["mean_wait_s"]


def test_without_contention_every_caller_waits_only_for_the_ring() -> None:
    out = bench.simulate(args(agents=20, miss=0.0, patience=1e9))
    assert (out["handled"], out["abandoned"], out["mean_wait_s"], out["p95_wait_s"]) == (20, 0, 4.0, 4.0)
    assert out["service_level"] == 1.0
