"""Dashboard event latency: how soon a finalised turn reaches every open supervisor dashboard.

Starts `voicebot serve` (SIP on loopback) in a subprocess with a supervisor user, opens N dashboard websockets
(`/ws/events`, logged in) in a second subprocess, then places M simultaneous SIP calls from this process with
the project's own SIP/RTP stack (real calls: each caller waits for the greeting, says two synthesised requests
(espeak-ng) and waits for each reply). Every dashboard notes when each event arrives.

Two latencies per (turn event, dashboard):
- ``publish_to_dashboard_ms``: from the event's ``ts`` (set when the call store publishes it, right after the
  turn's commit) to its arrival at the dashboard;
- ``decided_to_dashboard_ms`` (bot turns only): from the turn's ``start`` (the moment the bot's reply was
  decided, before the record's write and commit) to its arrival: the whole way from the dialog to the screen.
The target is p95 <= 300 ms. Server, dashboards and callers share one machine and its clock.

    python benchmarks/dashboard_events.py [--calls 20] [--dashboards 5] [--stagger 0.5]

Prints one JSON object. Needs espeak-ng and sox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sip_callers import answered_call, caller_agent, free_port, say_and_time_reply, synthesise  # noqa: E402

from telephony.sip.ua import DialError, UserAgent  # noqa: E402
from voicebot.client.local_server import ServerProcess  # noqa: E402

UTTERANCES = ("Where is my order?", "I also want to change my delivery address.")
TARGET_P95_MS = 300.0


# the dashboards (a subprocess of their own, so the callers' audio work does not delay their reading)


async def _dashboard(url: str, token: str, stop: Any, ready: Any) -> list[tuple[float, str]]:
    from websockets.asyncio.client import connect

    got: list[tuple[float, str]] = []
    async with connect(f"{url}?token={token}", max_size=None) as ws:
        got.append((time.time(), await ws.recv()))  # hello
        ready.release()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            got.append((time.time(), raw))  # arrival first, parsing later
    return got


def dashboards_main(url: str, token: str, n: int, stop: Any, ready: Any, out: Any) -> None:
    async def run() -> list[list[tuple[float, str]]]:
        return await asyncio.gather(*(_dashboard(url, token, stop, ready) for _ in range(n)))

    out.put(asyncio.run(run()))


# the callers


async def one_call(ua: UserAgent, target: str, speeches: list[bytes], delay: float) -> dict[str, Any]:
    result: dict[str, Any] = {"dropped": False, "replies": 0, "error": None}
    await asyncio.sleep(delay)
    try:
        async with answered_call(ua, target, ring_timeout=30, greeting_timeout=60) as (leg, ear, greeted):
            if not greeted:
                result["error"] = "no greeting"
            for speech in speeches:
                if await say_and_time_reply(leg, ear, speech, timeout=30) is not None:
                    result["replies"] += 1
                await ear.quiet_for(1.0, 30)
            result["dropped"] = leg.state != "answered"
    except DialError as exc:
        result.update(dropped=True, error=str(exc))
    return result


async def place_calls(n: int, bot_port: int, speeches: list[bytes], stagger: float) -> list[dict[str, Any]]:
    ua = caller_agent()
    await ua.start()
    try:
        return await asyncio.gather(*(one_call(ua, f"sip:dash{i}@127.0.0.1:{bot_port}", speeches, i * stagger)
                                      for i in range(n)))
    finally:
        await ua.stop()


def _pct(values: list[float], p: float) -> float | None:
    return round(float(np.percentile(values, p)), 1) if values else None


def summarise(streams: list[list[tuple[float, str]]]) -> dict[str, Any]:
    publish: list[float] = []
    decided: list[float] = []
    per_type: dict[str, int] = {}
    dropped = 0
    live_max = 0
    carried = {"bot_turns_with_trace": 0, "caller_turns_with_signals": 0, "caller_turns_with_entities": 0}
    for stream in streams:
        live: set[str] = set()
        for arrived, raw in stream:
            event = json.loads(raw)
            kind = event["type"]
            per_type[kind] = per_type.get(kind, 0) + 1
            if kind == "hello":
                live = {c["id"] for c in event["calls"]}
            elif kind == "dropped":
                dropped += event["n"]
            elif kind == "call.started":
                live.add(event["call_id"])
            elif kind == "call.ended":
                live.discard(event["call_id"])
            elif kind == "turn":
                publish.append((arrived - event["ts"]) * 1000)
                turn = event["turn"]
                extra = turn.get("extra") or {}
                carried["bot_turns_with_trace"] += turn["speaker"] == "bot" and "trace" in extra
                carried["caller_turns_with_signals"] += turn["speaker"] == "caller" and "signals" in extra
                carried["caller_turns_with_entities"] += turn["speaker"] == "caller" and "entities" in extra
                if turn["speaker"] == "bot" and turn.get("start"):
                    decided.append((arrived - datetime.fromisoformat(turn["start"]).timestamp()) * 1000)
            live_max = max(live_max, len(live))
    return {
        "turn_events_received": len(publish),
        "events_by_type": per_type,
        "events_dropped": dropped,
        "max_live_calls_seen": live_max,
        "turn_events_carrying": carried,
        "publish_to_dashboard_ms": {"p50": _pct(publish, 50), "p95": _pct(publish, 95),
                                    "max": round(max(publish), 1) if publish else None},
        "decided_to_dashboard_ms": {"p50": _pct(decided, 50), "p95": _pct(decided, 95),
                                    "max": round(max(decided), 1) if decided else None, "n": len(decided)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--dashboards", type=int, default=5)
    ap.add_argument("--stagger", type=float, default=0.5, help="Seconds between call starts.")
    args = ap.parse_args()

    from voicebot.users import UserStore

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        speeches = [synthesise(folder, text, f"say{i}") for i, text in enumerate(UTTERANCES)]
        sip_port = free_port()
        db_url = f"sqlite:///{folder}/bench.db"
        UserStore.from_url(db_url).add("bench", "supervisor", "bench-password")  # upgrades the new database
        server = ServerProcess(folder / "server", {
            "database": {"url": db_url}, "log_level": "WARNING",
            "sip": {"listen_udp": f"127.0.0.1:{sip_port}", "listen_tcp": "", "rtp_port_min": 41000,
                    "rtp_port_max": 41999, "invites_per_second_per_source": 100},
        })
        server.start()  # answers once SIP is listening too (it starts before HTTP)
        try:
            http_port = server.port
            token = _login(server.url)

            ctx = mp.get_context("spawn")
            stop, ready, out = ctx.Event(), ctx.Semaphore(0), ctx.Queue()
            boards = ctx.Process(target=dashboards_main,
                                 args=(f"ws://127.0.0.1:{http_port}/ws/events", token, args.dashboards, stop, ready,
                                       out))
            boards.start()
            for _ in range(args.dashboards):
                if not ready.acquire(timeout=60):
                    sys.exit("the dashboards did not connect")
            started = time.monotonic()
            calls = asyncio.run(place_calls(args.calls, sip_port, speeches, args.stagger))
            took = time.monotonic() - started
            time.sleep(1.0)  # the last events (call.ended) are on their way
            stop.set()
            streams = out.get(timeout=60)
            boards.join(timeout=30)
        finally:
            server.stop()

    result = {
        "driven_by": f"{args.calls} SIP calls from the project's own SIP/RTP stack (espeak-ng speech, 2 requests "
                     f"each, started {args.stagger} s apart) into `voicebot serve`; {args.dashboards} websocket "
                     "dashboards in a separate process",
        "calls": args.calls,
        "dashboards": args.dashboards,
        "sqlite_journal": "wal (the server's default since 2026-11-22)",
        "calls_dropped": sum(c["dropped"] for c in calls),
        "replies_heard": sum(c["replies"] for c in calls),
        "call_errors": [c["error"] for c in calls if c["error"]],
        "seconds": round(took, 1),
        **summarise(streams),
        "cpus": os.cpu_count(),
    }
    p95 = result["publish_to_dashboard_ms"]["p95"]
    result["pass"] = p95 is not None and p95 <= TARGET_P95_MS
    print(json.dumps(result), flush=True)


def _login(base: str) -> str:
    import urllib.request

    request = urllib.request.Request(base + "/api/login", method="POST",
                                     data=json.dumps({"username": "bench", "password": "bench-password"}).encode(),
                                     headers={"Content-Type": "application/json"})
    for _ in range(100):  # SIP may be ready a moment before HTTP
        try:
            with urllib.request.urlopen(request, timeout=30) as res:
                return json.loads(res.read())["token"]
        except OSError:  # URLError wraps "connection refused"
            time.sleep(0.1)
    sys.exit("cannot log in to voicebot serve")


if __name__ == "__main__":
    main()
