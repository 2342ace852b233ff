"""Listen-in costs and delay.

1. What the call pays: ``Monitors.feed`` of 20 ms with nobody listening; feed plus each listener's ``read``
   with 1 and with 5 listeners; three sources fed and mixed for one listener. Microseconds per 20 ms.
2. How late a supervisor hears the call: the listen API in process (FastAPI app with the real router and user
   store, an aiortc supervisor on loopback), a "call" feeding 20 ms frames in real time with a loud 20 ms burst
   every 0.5 s; the delay is from feeding a burst to its arrival at the supervisor (mixer buffer, 20 ms pacing,
   Opus, aiortc's jitter buffer and decoding). The call's own path (transport, pipeline) comes on top.

    python benchmarks/listen.py [--bursts 40]

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

from voicebot.monitor import FRAME_BYTES, Monitors  # noqa: E402


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
    from sqlalchemy import create_engine

    from voicebot.monitor import MONITORS
    from voicebot.server.listen import router
    from voicebot.server.rtc_audio import read_track
    from voicebot.users import UserStore

    with tempfile.TemporaryDirectory() as tmp:
        users = UserStore(create_engine(f"sqlite:///{tmp}/users.db"))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=40)
    args = parser.parse_args()
    result = {"costs": feed_costs(), "listen": asyncio.run(listen_delay(args.bursts))}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
