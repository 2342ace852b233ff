"""Concurrent SIP calls into `voicebot serve`: how many simultaneous callers one machine carries, understood.

Starts `voicebot serve` (SIP on loopback) in a subprocess, then for N = 1, 2, 4, ... places N simultaneous
calls from this process with the project's own SIP/RTP stack (a separate process from the bot, so the
callers do not share its event loop or CPU time slices). Each caller waits for the greeting to end, says a
synthesised request (espeak-ng, "Where is my order?"), and measures the reply latency from the end of its speech to
the first audible bot audio. It also records dropped calls (the bot hung up or the call failed) and the largest gap
between RTP packets from the bot. After the level, it reads each call's record from the server's call-records API
(``GET /api/calls/{id}`` as a supervisor; a SIP call's record id is its SIP Call-ID, which the caller knows, so
each record is matched to its caller exactly) and reports what the bot made of the request: the caller turn's word
error rate against the sentence (normalised as `voicebot eval stt` does; mean and worst), the calls whose NLU found
exactly the request ``order_status``, and the calls whose reply asks who the caller is (identity verification,
which an order needs; not a "didn't understand" or a check).

A level passes if p95 latency < 1.5 s, every call was replied to, no call dropped, no gap > 100 ms (``pass_timing``,
the criterion before 2026-12-05) **and every call's intent was ``order_status``** (``intent_right`` = N). The word
error rate and the reply kind are reported, not required: "Where is the order?", one word wrong, is still
understood. The JSON's ``pass_rule`` says this.

    python benchmarks/sip_concurrent.py [--levels 1,2,4,6,8,10,12] [--stagger 0.5] [--keep-going]

With the default stagger the N calls start 0.5 s apart, so their requests reach speech recognition at
different moments as independent callers' would; ``--stagger 0`` makes all N speak at once.

Prints one JSON object per level and a summary line. Needs espeak-ng and sox.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sip_callers import (  # noqa: E402
    Server,
    answered_call,
    caller_agent,
    free_port,
    say_and_time_reply,
    serve,
    synthesise,
    understanding,
)

from telephony.sip.ua import DialError, UserAgent  # noqa: E402

SENT_GAP = re.compile(r"largest gap sent (\d+) ms")
UTTERANCE = "Where is my order?"
INTENT = "order_status"
# The bot's reply to an order request from a caller it does not know yet: a question about who they are.
IDENTITY_QUESTIONS = ("verify_phone", "verify_factor")
PASS_RULE = (f"latency_p95_s < 1.5, every call replied to, dropped == 0, max_rtp_gap_ms <= 100 (pass_timing), and "
             f"intent_right == calls (every call's NLU found exactly {INTENT})")


async def one_call(ua: UserAgent, target: str, speech: bytes, delay: float) -> dict:
    result: dict = {"dropped": False, "latency_s": None, "max_gap_ms": None, "error": None, "call_id": None}
    await asyncio.sleep(delay)
    try:
        async with answered_call(ua, target, ring_timeout=15, greeting_timeout=30) as (leg, ear, greeted):
            result["call_id"] = leg.call_id  # the bot's record of the call has this id
            if not greeted:
                result["error"] = "no greeting"
            result["latency_s"] = await say_and_time_reply(leg, ear, speech)
            await ear.quiet_for(1.0, 20)
            result["dropped"] = leg.state != "answered"
            result["max_gap_ms"] = round(leg.rtp.stats.max_receive_gap_ms, 1)
    except DialError as exc:
        result.update(dropped=True, error=str(exc))
    return result


async def place_calls(n: int, bot_port: int, speech: bytes, stagger: float) -> list[dict]:
    ua = caller_agent()
    await ua.start()
    try:
        return await asyncio.gather(*(one_call(ua, f"sip:bench{i}@127.0.0.1:{bot_port}", speech, i * stagger)
                                      for i in range(n)))
    finally:
        await ua.stop()


def understood(results: list[dict], server: Server) -> dict:
    """What the bot's records of the calls say it heard, understood and replied (see the module's docstring); calls
    not fully right (any word wrong, another intent, another reply) are listed by their index in the level."""
    records = server.ended_call_records([r["call_id"] for r in results if r["call_id"]])
    judged = [understanding(records.get(r["call_id"]) if r["call_id"] else None, UTTERANCE) for r in results]
    wers = [u.wer for u in judged]
    faults = [{"call": i, "heard": u.heard, "wer": u.wer, "intents": list(u.intents), "reply_expect": u.reply_expect,
               "reply": u.reply[:100]}
              for i, u in enumerate(judged)
              if u.wer > 0 or not u.intent_right(INTENT) or u.reply_expect not in IDENTITY_QUESTIONS]
    return {
        "records": sum(1 for r in records.values() if r is not None),
        "transcribed_as_said": sum(w == 0 for w in wers),
        "transcript_wer_mean": round(float(np.mean(wers)), 3) if wers else None,
        "transcript_wer_max": max(wers) if wers else None,
        "intent_right": sum(u.intent_right(INTENT) for u in judged),
        "reply_asks_identity": sum(u.reply_expect in IDENTITY_QUESTIONS for u in judged),
        "not_as_expected": faults,
    }


def level(n: int, server: Server, bot_port: int, speech: bytes, stagger: float) -> dict:
    results = asyncio.run(place_calls(n, bot_port, speech, stagger))
    lat = [r["latency_s"] for r in results if r["latency_s"] is not None]
    gaps = [r["max_gap_ms"] for r in results if r["max_gap_ms"] is not None]
    out = {
        "calls": n,
        "stagger_s": stagger,
        "answered_replies": len(lat),
        "dropped": sum(r["dropped"] for r in results),
        "latency_p50_s": round(float(np.percentile(lat, 50)), 3) if lat else None,
        "latency_p95_s": round(float(np.percentile(lat, 95)), 3) if lat else None,
        "max_rtp_gap_ms": max(gaps) if gaps else None,
        "errors": [r["error"] for r in results if r["error"]],
    }
    out["pass_timing"] = bool(lat and len(lat) == n and out["latency_p95_s"] < 1.5 and out["dropped"] == 0
                              and out["max_rtp_gap_ms"] is not None and out["max_rtp_gap_ms"] <= 100)
    out.update(understood(results, server))
    out["pass"] = out["pass_timing"] and out["intent_right"] == n
    out["pass_rule"] = PASS_RULE
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="1,2,4,6,8,10,12")
    ap.add_argument("--keep-going", action="store_true", help="Run every level even after one fails.")
    ap.add_argument("--stagger", type=float, default=0.5,
                    help="Seconds between call starts (0: every caller speaks at the same moment, the worst case).")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        speech = synthesise(folder, UTTERANCE)
        port = free_port()
        with serve(folder, port) as server:
            lines = server.lines
            best = 0
            for n in levels:
                seen = len(lines)
                out = level(n, server, port, speech, args.stagger)
                time.sleep(0.5)  # the bot logs each call's RTP statistics as it ends
                sent = [float(m.group(1)) for line in lines[seen:] if (m := SENT_GAP.search(line))]
                # The callers' own measurement includes their event loop's delays; this is the bot's side.
                out["bot_max_send_gap_ms"] = max(sent) if sent else None
                print(json.dumps(out), flush=True)
                if out["pass"]:
                    best = n
                elif not args.keep_going:
                    break
            print(json.dumps({"max_concurrent_calls_passing": best, "cpus": os.cpu_count()}), flush=True)


if __name__ == "__main__":
    main()
