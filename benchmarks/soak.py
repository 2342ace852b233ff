"""Soak: N simultaneous multi-turn SIP calls into `voicebot serve` for many minutes; does anything grow?

Starts `voicebot serve` (SIP on loopback) in a subprocess and keeps ``--calls`` callers busy (the project's own
SIP/RTP stack, in this process): each places a call, waits for the greeting, says 3 to 5 requests (espeak-ng,
synthesised once at start) with a pause of 1 to 3 s after each reply, hangs up, and dials again at once. Every
``--sample-s`` it samples the server process (RSS, of it anonymous and file-backed, open file descriptors, threads
from /proc/PID) and the callers (calls completed and dropped in the interval, reply latency p50/p95, the largest
RTP gap from the bot, the machine's load average) and prints one JSON line (the first, at t=0, is the idle server
before any call); at the end a summary line: RSS slope per hour and per call (least squares over the samples
after the warm-up, against time and against calls ended), RSS growth in the first and second half of the
steady samples (a plateau shows as a second half near zero), fd and thread min/max, the largest RTP gap, reply
latency p50/p95 over the run, drops, load average, and a verdict with its reasons. ``--json FILE`` also writes
the summary and every sample to FILE. Flat means: RSS grows less than ``--max-rss-mb-per-hour`` after ``--warmup-minutes``, fds and threads
in the second half of the run never exceed the first half's maximum by more than a call's worth, and no call
dropped (a call the bot ends itself after a reply, as its dialog may, is counted apart, not as a drop).

    python benchmarks/soak.py [--calls 10] [--minutes 30] [--sample-s 60] [--json soak.json]

Needs espeak-ng and sox; Linux (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sip_callers import answered_call, caller_agent, free_port, say_and_time_reply, serve, synthesise  # noqa: E402

from telephony.sip.ua import DialError, UserAgent  # noqa: E402

# Requests that keep the dialog going (none asks for a person or says goodbye, which would end the call).
UTTERANCES = (
    "Where is my order?",
    "My order number is four five two eight one.",
    "When will it arrive?",
    "Can I change my delivery address?",
    "What are your opening hours?",
)
FD_SLACK = 8  # a call's sockets and pipes: fds may wander by this much at the same load
THREAD_SLACK = 4


@dataclass
class Tally:
    """What the callers saw since the last sample."""

    completed: int = 0
    ended_by_bot: int = 0
    dropped: int = 0
    latencies: list[float] = field(default_factory=list)
    max_gap_ms: float = 0.0
    errors: list[str] = field(default_factory=list)

    def take(self) -> Tally:
        out = Tally(self.completed, self.ended_by_bot, self.dropped, self.latencies, self.max_gap_ms, self.errors)
        self.completed, self.ended_by_bot, self.dropped, self.latencies, self.max_gap_ms, self.errors = (
            0, 0, 0, [], 0.0, [])
        return out


async def one_call(ua: UserAgent, target: str, speeches: list[bytes], tally: Tally, rng: random.Random) -> None:
    """One call of 3 to 5 turns. Dropped: no answer, no greeting, or a turn without a reply; a call the bot
    ends after replying (its dialog said goodbye or gave up verifying the caller) counts as ended by the bot."""
    dropped = False
    try:
        async with answered_call(ua, target, ring_timeout=15, greeting_timeout=30) as (leg, ear, greeted):
            if not greeted:
                tally.errors.append("no greeting")
                dropped = True
            for speech in rng.sample(speeches, rng.randint(3, min(5, len(speeches)))):
                if dropped or leg.state != "answered":
                    break
                latency = await say_and_time_reply(leg, ear, speech)
                if latency is None:
                    tally.errors.append("no reply" if leg.state == "answered" else "ended without a reply")
                    dropped = True
                    break
                tally.latencies.append(latency)
                await ear.quiet_for(1.0, 20)
                await asyncio.sleep(rng.uniform(1.0, 3.0))  # the caller thinks before the next request
            tally.max_gap_ms = max(tally.max_gap_ms, leg.rtp.stats.max_receive_gap_ms)
            ended_by_bot = leg.state != "answered"
    except DialError as exc:
        tally.dropped += 1
        tally.errors.append(f"dial: {exc}")
        return
    if dropped:
        tally.dropped += 1
    elif ended_by_bot:
        tally.ended_by_bot += 1
    else:
        tally.completed += 1


async def caller(ua: UserAgent, target: str, speeches: list[bytes], tally: Tally, until: float, seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        await one_call(ua, target, speeches, tally, rng)


def process_sample(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {
        "rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
        # Anonymous memory (heaps, arenas) is what a leak grows; file-backed pages are code and models paged in.
        "rss_anon_mb": round(int(fields["RssAnon"].split()[0]) / 1024, 1),
        "rss_file_mb": round(int(fields["RssFile"].split()[0]) / 1024, 1),
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


async def soak(pid: int, port: int, speeches: list[bytes], calls: int, minutes: float, sample_s: float,
               latencies: list[float]) -> tuple[list[dict], Tally]:
    """Run the callers; the samples, what the callers saw after the last one, and (into ``latencies``) every
    reply latency."""
    ua = caller_agent()
    await ua.start()
    tally = Tally()
    started = time.monotonic()
    until = started + minutes * 60
    tasks = []
    idle = {"t_s": 0, **process_sample(pid), "calls_ended": 0, "completed": 0, "ended_by_bot": 0, "dropped": 0,
            "latency_p50_s": None, "latency_p95_s": None, "max_rtp_gap_ms": 0.0,
            "load_avg_1min": round(os.getloadavg()[0], 2), "errors": []}
    samples: list[dict] = [idle]
    print(json.dumps(idle), flush=True)
    ended = 0
    try:
        for i in range(calls):
            tasks.append(asyncio.ensure_future(
                caller(ua, f"sip:soak{i}@127.0.0.1:{port}", speeches, tally, until, seed=i)))
            await asyncio.sleep(0.5)  # independent callers do not all start at the same instant
        next_at = started + sample_s
        while time.monotonic() < until:
            await asyncio.sleep(max(0.0, min(next_at, until) - time.monotonic()))
            seen = tally.take()
            lat = seen.latencies
            latencies += lat
            ended += seen.completed + seen.ended_by_bot + seen.dropped
            sample = {
                "t_s": round(time.monotonic() - started),
                **process_sample(pid),
                "calls_ended": ended,  # since the start: RSS against it gives the growth per call
                "completed": seen.completed,
                "ended_by_bot": seen.ended_by_bot,
                "dropped": seen.dropped,
                "latency_p50_s": round(float(np.percentile(lat, 50)), 3) if lat else None,
                "latency_p95_s": round(float(np.percentile(lat, 95)), 3) if lat else None,
                "max_rtp_gap_ms": round(seen.max_gap_ms, 1),
                "load_avg_1min": round(os.getloadavg()[0], 2),
                "errors": seen.errors,
            }
            samples.append(sample)
            print(json.dumps(sample), flush=True)
            next_at += sample_s
        await asyncio.gather(*tasks)  # the calls under way finish their turns
    finally:
        for task in tasks:
            task.cancel()
        await ua.stop()
    tail = tally.take()
    latencies += tail.latencies
    return samples, tail


def summary(samples: list[dict], tail: Tally, latencies: list[float], max_rss_mb_per_hour: float,
            warmup_s: float, calls: int) -> dict:
    # The first minutes fill caches and pools (the TTS cache, the allocator's arenas): not a leak.
    steady = [s for s in samples if s["t_s"] >= warmup_s]
    steady = steady if len(steady) >= 2 else samples
    t = np.array([s["t_s"] for s in steady], dtype=np.float64) / 3600
    rss = np.array([s["rss_mb"] for s in steady], dtype=np.float64)
    slope = float(np.polyfit(t, rss, 1)[0]) if len(steady) >= 2 else 0.0
    ended = np.array([s["calls_ended"] for s in steady], dtype=np.float64)
    per_call = float(np.polyfit(ended, rss, 1)[0]) if len(steady) >= 2 and np.ptp(ended) > 0 else None
    mid = len(steady) // 2  # growth in each half of the steady samples: a plateau has a flat second half
    first_half_mb = steady[mid]["rss_mb"] - steady[0]["rss_mb"]
    second_half_mb = steady[-1]["rss_mb"] - steady[mid]["rss_mb"]
    half = max(1, len(samples) // 2)
    fds = [s["fds"] for s in samples]
    threads = [s["threads"] for s in samples]
    dropped = sum(s["dropped"] for s in samples) + tail.dropped
    fds_bounded = max(fds[half:] or fds) <= max(fds[:half]) + FD_SLACK
    threads_bounded = max(threads[half:] or threads) <= max(threads[:half]) + THREAD_SLACK
    reasons = []
    if slope >= max_rss_mb_per_hour:
        reasons.append(f"RSS grows {slope:.0f} MB/h (limit {max_rss_mb_per_hour:.0f})")
    if not fds_bounded:
        reasons.append(f"open files grew to {max(fds)} (first half at most {max(fds[:half])})")
    if not threads_bounded:
        reasons.append(f"threads grew to {max(threads)} (first half at most {max(threads[:half])})")
    if dropped:
        reasons.append(f"{dropped} call(s) dropped")
    loads = [s["load_avg_1min"] for s in samples]
    return {
        "simultaneous_calls": calls,
        "minutes": round(samples[-1]["t_s"] / 60, 1),
        "samples": len(samples),
        "calls_completed": sum(s["completed"] for s in samples) + tail.completed,
        "calls_ended_by_bot": sum(s["ended_by_bot"] for s in samples) + tail.ended_by_bot,
        "calls_dropped": dropped,
        "rss_mb_idle": samples[0]["rss_mb"], "rss_mb_at_warmup": steady[0]["rss_mb"],
        "rss_mb_max": max(s["rss_mb"] for s in samples), "rss_mb_last": samples[-1]["rss_mb"],
        "rss_anon_mb_first": samples[0]["rss_anon_mb"], "rss_anon_mb_last": samples[-1]["rss_anon_mb"],
        "rss_slope_mb_per_hour": round(slope, 1), "rss_slope_limit_mb_per_hour": max_rss_mb_per_hour,
        "rss_slope_from_s": steady[0]["t_s"],
        "rss_mb_per_call": round(per_call, 3) if per_call is not None else None,
        "rss_growth_mb_first_half": round(first_half_mb, 1), "rss_growth_mb_second_half": round(second_half_mb, 1),
        "fds_min": min(fds), "fds_max": max(fds), "fds_bounded": fds_bounded,
        "threads_min": min(threads), "threads_max": max(threads), "threads_bounded": threads_bounded,
        "max_rtp_gap_ms": max(s["max_rtp_gap_ms"] for s in samples),
        "replies": len(latencies),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3) if latencies else None,
        "latency_p95_s": round(float(np.percentile(latencies, 95)), 3) if latencies else None,
        "verdict": "not flat: " + "; ".join(reasons) if reasons else "flat",
        "cpus": os.cpu_count(),
        "load_avg_1min_mean": round(float(np.mean(loads)), 2), "load_avg_1min_max": max(loads),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=10, help="Simultaneous callers.")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--sample-s", type=float, default=60, help="Seconds between samples.")
    ap.add_argument("--max-rss-mb-per-hour", type=float, default=20.0,
                    help="The RSS growth (least-squares slope) still called flat.")
    ap.add_argument("--warmup-minutes", type=float, default=5.0,
                    help="Samples before this are left out of the RSS slope (caches filling up).")
    ap.add_argument("--json", type=Path, default=None, help="Also write the summary and every sample here.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        speeches = [synthesise(folder, text, f"say{i}") for i, text in enumerate(UTTERANCES)]
        port = free_port()
        with serve(folder, port) as server:
            latencies: list[float] = []
            samples, tail = asyncio.run(
                soak(server.process.pid, port, speeches, args.calls, args.minutes, args.sample_s, latencies))
        if len(samples) < 2:
            sys.exit("soak: no sample taken during the calls (run for longer than --sample-s)")
        # The calls still under way at the last sample count in the summary once they are over.
        result = summary(samples, tail, latencies, args.max_rss_mb_per_hour, args.warmup_minutes * 60, args.calls)
        print(json.dumps(result), flush=True)
        if args.json is not None:
            args.json.write_text(json.dumps({"summary": result, "samples": samples}, indent=1) + "\n")


if __name__ == "__main__":
    main()
