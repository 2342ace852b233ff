"""Listen-in costs and delay.

1. What the call pays: ``Monitors.feed`` of 20 ms with nobody listening; feed plus each listener's ``read``
   with 1 and with 5 listeners; three sources fed and mixed for one listener. Microseconds per 20 ms.
2. How late a supervisor hears the call: the listen API in process (FastAPI app with the real router and user
   store, an aiortc supervisor on loopback), a "call" feeding 20 ms frames in real time with a loud 20 ms burst
   every 0.5 s; the delay is from feeding a burst to its arrival at the supervisor (mixer buffer, 20 ms pacing,
   Opus, aiortc's jitter buffer and decoding). The call's own path (transport, pipeline) comes on top.
3. With ``--call``, on a real call: ``voicebot serve`` in a subprocess, an aiortc caller playing 1 kHz beeps
   after the greeting and a logged-in supervisor listening: from a beep leaving the caller to its arrival at
   the supervisor, and how much later (or earlier) the supervisor hears the bot's greeting than the caller.

    python benchmarks/listen.py [--bursts 40] [--call]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio.pcm import FRAME_BYTES  # noqa: E402
from voicebot.monitor import Monitors  # noqa: E402


def feed_costs() -> dict[str, float]:
    frame = np.full(FRAME_BYTES // 2, 1000, dtype="<i2").tobytes()
    out: dict[str, float] = {}
    for listeners in (0, 1, 5):
        m = Monitors()
        m.begin("c")
        held = [m.listen("c") for _ in range(listeners)]
        n = 200_000 if listeners == 0 else 50_000

        def run(m: Monitors = m, held: list[Any] = held) -> None:
            m.feed("c", "caller", frame)
            for listener in held:
                listener.read()  # keep the buffers from filling, as a reader would

        key = "feed_us_no_listener" if not listeners else f"feed_and_read_us_{listeners}_listeners"
        out[key] = round(timeit.timeit(run, number=n) / n * 1e6, 3)
    m = Monitors()
    m.begin("c")
    listener = m.listen("c")

    def mix3() -> None:
        for source in ("caller", "bot", "agent"):
            m.feed("c", source, frame)
        listener.read()

    n = 50_000
    out["feed3_and_mix_us"] = round(timeit.timeit(mix3, number=n) / n * 1e6, 3)
    return out


async def listen_delay(bursts: int) -> dict[str, Any]:
    import httpx
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from fastapi import FastAPI

    from voicebot.monitor import MONITORS
    from voicebot.server.listen import router
    from voicebot.server.rtc_audio import read_track
    from voicebot.users import UserStore

    with tempfile.TemporaryDirectory() as tmp:
        users = UserStore.from_url(f"sqlite:///{tmp}/users.db")  # upgrades the new database
        users.add("sup", "supervisor", "pw-sup")
        token = users.login("sup", "pw-sup").token  # type: ignore[union-attr]
        app = FastAPI()
        app.include_router(router)
        app.state.users = users
        arrivals: list[float] = []
        last_loud = 0.0

        def heard(pcm: bytes) -> None:
            nonlocal last_loud
            x = np.frombuffer(pcm, np.int16).astype(np.float64)
            now = time.perf_counter()
            if np.sqrt(np.mean(x**2)) > 2000:
                if now - last_loud > 0.2:
                    arrivals.append(now)
                last_loud = now

        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="recvonly")
        pc.on("track", lambda track: asyncio.ensure_future(read_track(track, heard)))
        MONITORS.begin("bench")
        try:
            await pc.setLocalDescription(await pc.createOffer())
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:
                res = await client.post("/api/live/bench/listen", headers={"Authorization": f"Bearer {token}"},
                                        json={"sdp": pc.localDescription.sdp, "type": "offer"})
                res.raise_for_status()
                await pc.setRemoteDescription(RTCSessionDescription(**{k: res.json()[k] for k in ("sdp", "type")}))
                while pc.connectionState != "connected":
                    await asyncio.sleep(0.01)
                t = np.arange(FRAME_BYTES // 2) / 16000
                burst = (20000 * np.sin(2 * np.pi * 1000 * t)).astype("<i2").tobytes()
                silence = bytes(FRAME_BYTES)
                sent: list[float] = []
                start = time.perf_counter()
                for i in range(bursts * 25 + 25):
                    await asyncio.sleep(max(0.0, start + i * 0.02 - time.perf_counter()))
                    loud = i % 25 == 0 and i < bursts * 25
                    if loud:
                        sent.append(time.perf_counter())
                    MONITORS.feed("bench", "caller", burst if loud else silence)
        finally:
            MONITORS.end("bench")
            await pc.close()
    delays = []
    for s in sent:
        later = [a for a in arrivals if s < a < s + 0.45]
        if later:
            delays.append((later[0] - s) * 1000)
    return {"bursts": len(sent), "heard": len(delays),
            "delay_ms": {"p50": round(float(np.percentile(delays, 50)), 1),
                         "p95": round(float(np.percentile(delays, 95)), 1),
                         "max": round(max(delays), 1)} if delays else None}


async def call_delay(workdir: Path, beeps: int = 8) -> dict[str, Any]:
    import urllib.parse

    import httpx
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from voicebot.client.local_server import ServerProcess
    from voicebot.client.webrtc import RATE, FilePlayer, Recorder, http_json
    from voicebot.server.rtc_audio import read_track
    from voicebot.users import UserStore

    period, beep_s = 1.5, 0.12
    t = np.arange(int(beep_s * RATE)) / RATE
    beep = (12000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    samples = np.zeros(int(period * beeps * RATE), dtype=np.int16)
    for k in range(beeps):
        samples[int(k * period * RATE) : int(k * period * RATE) + beep.size] = beep
    db = f"sqlite:///{workdir / 'voicebot.db'}"
    with ServerProcess(workdir, {"database": {"url": db}}) as server:
        from sqlalchemy import create_engine

        users = UserStore(create_engine(db))
        users.add("sup", "supervisor", "pw-sup")
        token = users.login("sup", "pw-sup").token  # type: ignore[union-attr]
        player, recorder = FilePlayer(samples), Recorder()
        caller = RTCPeerConnection()
        caller.addTransceiver(player, direction="sendrecv")
        tasks: list[asyncio.Task[None]] = []
        caller.on("track", lambda track: tasks.append(asyncio.ensure_future(recorder.run(track))))
        await caller.setLocalDescription(await caller.createOffer())
        answer = await asyncio.to_thread(http_json, "POST", f"{server.url}/api/offer",
                                        {"sdp": caller.localDescription.sdp, "type": "offer"})
        await caller.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        heard: list[tuple[float, np.ndarray]] = []
        sup = RTCPeerConnection()
        sup.addTransceiver("audio", direction="recvonly")
        sup.on("track", lambda track: tasks.append(asyncio.ensure_future(read_track(
            track, lambda pcm: heard.append((time.monotonic(), np.frombuffer(pcm, np.int16)))))))
        await sup.setLocalDescription(await sup.createOffer())
        async with httpx.AsyncClient(timeout=30) as http:
            res = await http.post(f"{server.url}/api/live/{urllib.parse.quote(answer['pc_id'], safe='')}/listen",
                                  json={"sdp": sup.localDescription.sdp, "type": "offer"},
                                  headers={"Authorization": f"Bearer {token}"})
            res.raise_for_status()
        await sup.setRemoteDescription(RTCSessionDescription(sdp=res.json()["sdp"], type=res.json()["type"]))
        deadline = time.monotonic() + 30
        while not recorder.quiet_for(0.8) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        player.play()
        while not player.finished.is_set():
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        await caller.close()
        await sup.close()
        for task in tasks:
            task.cancel()

    def loud(x: np.ndarray) -> bool:
        return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) > 1000

    def beepy(x: np.ndarray) -> bool:
        spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
        return loud(x) and abs(np.argmax(spectrum) * 16000 / x.size - 1000) < 100

    assert player.play_started is not None
    delays = []
    for k in range(beeps):
        sent = player.play_started + k * period
        got = next((at - 0.02 for at, x in heard if at - 0.02 > sent - 0.01 and beepy(x)), None)
        if got is not None and got - sent < period / 2:
            delays.append((got - sent) * 1000)
    sup_greeting = next((at - 0.02 for at, x in heard if loud(x)), None)
    caller_greeting = recorder.onsets[0] if recorder.onsets else None
    return {
        "beeps": beeps, "heard": len(delays),
        "caller_to_supervisor_ms": {"p50": round(float(np.percentile(delays, 50)), 1),
                                    "max": round(max(delays), 1)} if delays else None,
        "greeting_supervisor_minus_caller_ms": round((sup_greeting - caller_greeting) * 1000, 1)
        if sup_greeting is not None and caller_greeting is not None else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=40)
    parser.add_argument("--call", action="store_true", help="also measure on a real call (starts voicebot serve)")
    args = parser.parse_args()
    result: dict[str, Any] = {"costs": feed_costs(), "listen": asyncio.run(listen_delay(args.bursts))}
    if args.call:
        with tempfile.TemporaryDirectory() as tmp:
            result["call"] = asyncio.run(call_delay(Path(tmp)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
