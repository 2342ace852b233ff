"""Agent assist latency: from the end of a caller's words to their line on the agent page; and the time to
compute a call's scorecard. Prints JSON.

    python benchmarks/assist_latency.py [--phrases 6] [--scorecard-runs 200]

Real parts: ``voicebot serve`` in a child process (SIP on, the demo domain, its whisper), our SIP user agent as
the caller, headless Chromium as the agent's phone (the agent page, auto-answer, WebRTC). The caller asks the
bot for a person after the greeting; once the page shows the call connected, she says ``--phrases`` known
sentences (espeak-ng), each followed by 2.5 s of silence. (She asks for the person with the keypad's 0.)
Per sentence:

- ``speech_end``: the wall-clock time the caller's last speech frame left her user agent (written, plus the
  audio still queued in the leg);
- ``shown``: the wall-clock time (``performance.timeOrigin + performance.now()``, same machine) a
  MutationObserver saw the caller's line added to the page's live transcript;
- ``latency_s`` = shown - speech_end. It holds the end-of-utterance wait (the bridged call's segmenter needs
  a pause to know the caller stopped), the transcription, the database write, the event bus, the websocket
  and the page's render.

The n-th line shown after a sentence's end is matched with that sentence (lines appear in speaking order).

The scorecard figure: ``voicebot.qa.scorecard.Scorer.score`` over every call record the run left in the
database (the bridged call with its turns), ``--scorecard-runs`` times each; per-call milliseconds.

The machine is shared, so numbers are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from audio.pcm import FRAME_BYTES, SAMPLE_RATE
from audio.speech import espeak_ng, write_wav
from telephony.config import SipConfig
from telephony.sip.ua import UserAgent
from voicebot.client.local_server import ServerProcess

PHRASES = (
    "I ordered a pair of running shoes last week.",
    "The parcel has not arrived yet.",
    "Could you tell me where it is?",
    "My order number is four five two eight one.",
    "I would also like to change my delivery address.",
    "Thank you very much for your help.",
    "Can you send me an email confirmation?",
    "I will wait for the tracking number.",
)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
# Every caller line added to the live transcript, with the wall-clock time it appeared (ms since the epoch).
OBSERVE = """() => {
  window.assistLines = [];
  new MutationObserver((records) => {
    const t = performance.timeOrigin + performance.now();
    for (const r of records) for (const n of r.addedNodes) {
      if (n.classList && n.classList.contains("caller")) window.assistLines.push({t, text: n.textContent});
    }
  }).observe(document.getElementById("live"), {childList: true});
}"""
# The page re-renders the whole live transcript on each turn: only lines not seen before count.


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def speech_pcm(text: str) -> bytes:
    speech, _ = espeak_ng(text, rate=150, sample_rate=SAMPLE_RATE)
    return bytes((speech * 20000).astype(np.int16).tobytes())


class Ears:
    """When the bot last spoke to the caller (an audio sink of her leg)."""

    def __init__(self) -> None:
        self.loud = 0
        self.last = 0.0
        self.last_wall = 0.0  # the same, in epoch seconds

    def __call__(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
        if samples.size and float(np.sqrt(np.mean(samples**2))) > 500:
            self.loud += 1
            self.last = time.monotonic()
            self.last_wall = time.time()

    async def done_speaking(self, since: float, quiet_s: float = 1.5, timeout_s: float = 90) -> None:
        """Until the bot has spoken after ``since`` (epoch seconds) and then stayed quiet for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.last_wall >= since and time.time() - self.last_wall > quiet_s:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("the bot did not say its turn")

    async def bot_spoke(self, quiet_s: float = 1.5, timeout_s: float = 90) -> None:
        mark, deadline = self.loud, time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.loud > mark and time.monotonic() - self.last > quiet_s:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("the bot said nothing")


def caller(bot_port: int, phrases: tuple[str, ...], connected: threading.Event, finished: threading.Event,
           ends: list[float], errors: list[BaseException]) -> None:
    """Call, ask for a person, and once ``connected`` say each phrase; ``ends`` gets each phrase's speech end."""

    async def main() -> None:
        ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, rtp_port_min=38600,
                                 rtp_port_max=38699))
        await ua.start()
        try:
            leg = await ua.dial(f"sip:bot@127.0.0.1:{bot_port}", caller="5550142")
            ears = Ears()
            leg.add_sink(ears)
            await ears.bot_spoke()
            leg.send_dtmf("0")  # a person, please (the keypad: no recognition to wait for)
            while not connected.is_set():
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)  # let the bridge settle: hand-off sentence, whisper
            for phrase in phrases:
                words = speech_pcm(phrase)
                for i in range(0, len(words), FRAME_BYTES):
                    await leg.write_audio(words[i : i + FRAME_BYTES])
                ends.append(time.time() + leg.queued_ms / 1000)
                silence = bytes(FRAME_BYTES * 125)  # 2.5 s
                for i in range(0, len(silence), FRAME_BYTES):
                    await leg.write_audio(silence[i : i + FRAME_BYTES])
            await asyncio.sleep(8)  # the last line's transcription
            await leg.hangup()
        except BaseException as exc:
            errors.append(exc)
        finally:
            await ua.stop()
            finished.set()

    asyncio.run(main())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def scorecard_times(db_url: str, runs: int) -> dict[str, Any]:
    from sqlalchemy import create_engine, select

    from voicebot.qa.scorecard import Scorer
    from voicebot.storage.calls import CallStore
    from voicebot.storage.models import CallRow

    engine = create_engine(db_url)
    store = CallStore(engine)
    try:
        with engine.connect() as c:
            ids = list(c.scalars(select(CallRow.id)))
        records = [r for r in (store.get(i) for i in ids) if r is not None]
    finally:
        store.close()
    scorer = Scorer()
    per_call: list[float] = []
    for record in records:
        start = time.perf_counter()
        for _ in range(runs):
            scorer.score(record)
        per_call.append((time.perf_counter() - start) / runs * 1000)
    return {"calls": len(records), "turns": [len(r.get("turns", [])) for r in records], "runs_each": runs,
            "ms_per_call": [round(x, 3) for x in per_call],
            "ms_max": round(max(per_call), 3) if per_call else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phrases", type=int, default=6)
    parser.add_argument("--scorecard-runs", type=int, default=200)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    phrases = PHRASES[: args.phrases]
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="assist-latency-"))
    mic = write_wav(work / "mic.wav", np.zeros(10 * 48000, dtype=np.float32), 48000)
    config = {
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                "rtp_port_min": 38700, "rtp_port_max": 38799},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": "webrtc"}],
        "queues": [{"name": "general", "agent_timeout": 60, "max_wait": 180, "wrap_up": 300}],
    }
    connected, finished = threading.Event(), threading.Event()
    ends: list[float] = []
    errors: list[BaseException] = []
    with ServerProcess(work / "server", config, start_timeout_s=400) as server, sync_playwright() as p:
        add_agent_login(server.config["database"]["url"])
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={mic}%noloop"])
        try:
            page = browser.new_page()
            target = "/agent?agent=alice&autoanswer=1&raw=1"
            page.goto(server.url + target)
            page.wait_for_url("**/login?next=*", timeout=30_000)
            page.fill("#username", "alice")
            page.fill("#password", "pw-alice-bench")
            page.click("#submit")
            page.wait_for_url("**" + target, timeout=30_000)
            page.wait_for_function("() => document.getElementById('agent').value === 'alice'", timeout=30_000)
            page.click("button[data-state=available]")
            page.wait_for_function("() => document.getElementById('state').textContent.startsWith('available')",
                                   timeout=30_000)
            page.click("#usephone")
            page.wait_for_function("() => document.getElementById('phonestatus').textContent === 'phone: connected'",
                                   timeout=60_000)
            page.evaluate(OBSERVE)
            thread = threading.Thread(target=caller, args=(port, phrases, connected, finished, ends, errors),
                                      daemon=True)
            thread.start()
            page.wait_for_function("() => document.getElementById('callstatus').textContent === '(connected)'",
                                   timeout=400_000)
            connected.set()
            finished.wait(60 + 10 * len(phrases))
            lines = page.evaluate("() => window.assistLines")
        finally:
            browser.close()
        db_url = server.config["database"]["url"]
    if errors:
        raise SystemExit(f"the caller failed: {errors[0]!r}")
    seen: set[str] = set()
    fresh = []  # each caller line once, when it first appeared
    for line in lines:
        if line["text"] not in seen:
            seen.add(line["text"])
            fresh.append((line["t"] / 1000, line["text"]))
    per_phrase: list[dict[str, Any]] = []
    used = 0
    for phrase, end in zip(phrases, ends, strict=True):
        match = next((i for i in range(used, len(fresh)) if fresh[i][0] >= end), None)
        if match is None:
            per_phrase.append({"said": phrase, "shown": None, "latency_s": None})
            continue
        used = match + 1
        per_phrase.append({"said": phrase, "shown": fresh[match][1], "latency_s": round(fresh[match][0] - end, 3)})
    latencies: list[float] = [x["latency_s"] for x in per_phrase if x["latency_s"] is not None]
    print(json.dumps({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_1m": round(os.getloadavg()[0], 2), "python": sys.version.split()[0]},
        "definition": "end of the caller's speech (last frame out of her user agent) -> caller line added to the "
                      "agent page's live transcript",
        "phrases": len(phrases), "lines_shown": len(latencies),
        "latency_s": {"p50": round(statistics.median(latencies), 3) if latencies else None,
                      "p95": round(percentile(latencies, 0.95), 3) if latencies else None,
                      "max": round(max(latencies), 3) if latencies else None},
        "per_phrase": per_phrase,
        "scorecard": scorecard_times(db_url, args.scorecard_runs),
    }, indent=2))


def add_agent_login(db_url: str) -> None:
    """Alice's login as an agent (as ``voicebot users add`` makes it)."""
    from sqlalchemy import create_engine

    from voicebot.users import UserStore

    UserStore(create_engine(db_url)).add("alice", "agent", "pw-alice-bench", "alice")


if __name__ == "__main__":
    main()
