"""Browser (WebRTC) callers in the agent queue, end to end through ``voicebot serve`` with real peers.

1. An aiortc caller (``voicebot.server.webrtc_client``'s player and recorder; espeak-ng speech) asks the bot
   for a human; the queue rings a baresip agent in auto-answer mode (SIP), who hears the whisper and then the
   caller; the caller hears the agent (a 3000 Hz tone, then "Hello, this is Alice from customer care") but
   not the whisper. The call record: outcome ``handoff``, ``agent_id`` alice, the bridged turns of both sides.
2. The caller page in headless Chromium asks for a human while no agent is logged in, waits in the queue, and
   the page is closed: the call is ``abandoned`` with its wait time.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from auth_helpers import add_user, login
from test_telephony_baresip import sip_port, transcribe
from test_transfer_live import AGENT_HZ, frames_at, tone

from audio.speech import espeak_ng
from voicebot.server.process import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]

RATE = 48000


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as res:
        return json.loads(res.read())


def closed_record(base: str, call_id: str, headers: dict[str, str], timeout: float = 60) -> dict[str, Any]:
    """The call record once it is closed (the queue closes it after the last bridged turn is stored)."""
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        record = get(f"{base}/api/calls/{urllib.parse.quote(call_id, safe='')}", headers)
        if record.get("end"):
            return record
        time.sleep(0.3)
    raise AssertionError(f"call {call_id} was not closed: {record}")


def speech(text: str, rate: int = RATE) -> np.ndarray:
    samples, _ = espeak_ng(text, rate=150, sample_rate=rate)
    return (samples * 20000).astype(np.int16)


async def browser_call(base: str, samples: np.ndarray, max_s: float) -> tuple[str, np.ndarray, float]:
    """Call the bot like a browser; after the greeting, play ``samples``; listen until the server ends the
    call (or ``max_s``). Returns the call id, what the caller heard (48 kHz) and seconds the call lasted."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from voicebot.server.webrtc_client import _FilePlayer, _http_json, _Recorder

    player, recorder = _FilePlayer(samples), _Recorder()
    pc = RTCPeerConnection()
    pc.addTransceiver(player, direction="sendrecv")
    tasks: list[asyncio.Task[None]] = []
    closed = asyncio.Event()

    @pc.on("track")
    def on_track(track: Any) -> None:
        tasks.append(asyncio.ensure_future(recorder.run(track)))

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        if pc.connectionState in ("closed", "failed"):
            closed.set()

    await pc.setLocalDescription(await pc.createOffer())
    answer = await asyncio.to_thread(_http_json, "POST", f"{base}/api/offer",
                                     {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    started = time.monotonic()
    try:
        while not recorder.quiet_for(0.8) and time.monotonic() - started < 20:  # the greeting
            await asyncio.sleep(0.05)
        player.play()
        ended = asyncio.ensure_future(asyncio.wait([asyncio.ensure_future(closed.wait()),
                                                    asyncio.ensure_future(recorder.closed.wait())],
                                                   return_when=asyncio.FIRST_COMPLETED))
        await asyncio.wait_for(ended, max_s)
    except TimeoutError:
        pass
    finally:
        lasted = time.monotonic() - started
        await pc.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return answer["pc_id"], recorder.audio(), lasted


def baresip_agent(folder: Path, port: int, wav: Path) -> subprocess.Popen:
    folder.mkdir()
    (folder / "rec").mkdir()
    (folder / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{port}\n"
        "audio_player aubridge,nullplay\naudio_alert aubridge,nullplay\n"
        f"audio_source aufile,{wav}\nnet_interface 127.0.0.1\n"
        "module_path /usr/lib/baresip/modules\n"
        + "".join(f"module {m}.so\n" for m in ("g711", "aufile", "aubridge", "sndfile", "account", "menu"))
        + f"snd_path {folder / 'rec'}\n"
    )
    (folder / "accounts").write_text(f"<sip:alice@127.0.0.1:{port}>;regint=0;answermode=auto\n")
    return subprocess.Popen(["baresip", "-f", str(folder), "-t", "120"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed (apt-get install baresip-core)")
def test_browser_caller_is_warm_transferred_to_a_sip_agent(tmp_path: Path) -> None:
    rate = 8000
    agent_port, port = free_udp_port(), sip_port()
    # The agent's phone: silent while the whisper plays, then 4 s of 3000 Hz, then says hello, then hangs up.
    hello = speech("Hello, this is Alice from customer care.", rate)
    sf.write(str(tmp_path / "agent.wav"),
             np.concatenate([np.zeros(9 * rate, np.int16), tone(AGENT_HZ, 4, rate), np.zeros(rate // 2, np.int16),
                             hello, np.zeros(3 * rate, np.int16)]), rate, subtype="PCM_16")
    agent = baresip_agent(tmp_path / "agent", agent_port, tmp_path / "agent.wav")
    # The caller: asks for a person; once with the agent, says what it is about.
    caller = np.concatenate([speech("I want to speak to a human."), np.zeros(7 * RATE, np.int16),
                             speech("Hello, I am calling about my refund."), np.zeros(40 * RATE, np.int16)])
    config = {
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                "rtp_port_min": 38700, "rtp_port_max": 38799},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": f"sip:alice@127.0.0.1:{agent_port}",
                    "logged_in": True}],
        "queues": [{"name": "general", "agent_timeout": 10, "max_wait": 60}],
    }
    try:
        with ServerProcess(tmp_path / "server", config) as server:
            call_id, heard, lasted = asyncio.run(browser_call(server.url, caller, max_s=60))
            add_user(f"sqlite:///{tmp_path / 'server' / 'voicebot.db'}", "sup", "supervisor")
            headers = login(server.url, "sup")
            record = closed_record(server.url, call_id, headers)
            log = server.log()
    finally:
        agent.terminate()
        agent.wait(timeout=10)

    assert lasted < 55, f"the call did not end when the agent hung up ({lasted:.0f} s)\n{log}"
    assert record["outcome"] == "handoff" and record["agent_id"] == "alice", (record, log)
    bridged = [t for t in record["turns"] if t.get("extra", {}).get("kind") == "bridged"]
    agent_said = " ".join(t["text"] for t in bridged if t["speaker"] == "agent").lower()
    caller_said = " ".join(t["text"] for t in bridged if t["speaker"] == "caller").lower()
    assert "alice" in agent_said or "customer care" in agent_said, record["turns"]
    assert "refund" in caller_said, record["turns"]
    assert record["transfer"]["agent_id"] == "alice" and record["transfer"]["outcome"] == "answered"
    assert any("refund" in t["text"].lower() for t in record["transfer"]["transcript"])

    # The caller heard the agent, but not the whisper ("Caller not identified. Asked for a person.").
    assert frames_at(heard, RATE, AGENT_HZ) > 100, log
    sf.write(str(tmp_path / "caller_heard.wav"), heard, RATE, subtype="PCM_16")
    caller_heard = transcribe(tmp_path / "caller_heard.wav").lower()
    assert "alice" in caller_heard or "customer care" in caller_heard, caller_heard
    assert "identified" not in caller_heard and "asked for a person" not in caller_heard, caller_heard
    # The agent heard the whisper, then the caller.
    agent_heard = transcribe(next((tmp_path / "agent" / "rec").glob("dump-*-dec.wav"))).lower()
    assert "person" in agent_heard or "identified" in agent_heard, agent_heard
    assert "calling about" in agent_heard, agent_heard  # (G.711 at 8 kHz: "refund" may come out as another word)
