"""A browser caller bridged to an agent is recorded once per side: the caller's audio reaches the recorder (and
listen-in, the same feed: :mod:`voicebot.monitor`) either from the bot's pipeline tap or, once the queue has taken
the caller's leg, from the bridge's tap, never from both. End to end through ``voicebot serve``: an aiortc caller
asks for a person, a baresip agent (SIP, auto-answer) plays a 3000 Hz tone; once the caller hears it, the caller
plays 1.5 s of 1000 Hz. In the call's stereo WAV the caller's tone lasts 1.5 s at its own level in the left
channel (not twice as long, not twice as loud), the agent's 4 s tone 4 s in the right."""

from __future__ import annotations

import asyncio
import shutil
import time
import urllib.parse
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from auth_helpers import add_user, login
from call_models import CALL_FLOW_MODELS
from net_helpers import free_port, rtp_ports, sip_port
from test_transfer_live import AGENT_HZ, frames_at, tone
from test_transfer_webrtc_caller import RATE, baresip_agent, browser_call, get, speech

from audio.pcm import SAMPLE_RATE
from voicebot.client.local_server import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
    pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed (apt-get install baresip-core)"),
]

CALLER_HZ = 1000
CALLER_TONE_S = 1.5
AGENT_TONE_S = 4.0
LEVEL = 8000


def recorded(base: str, call_id: str, headers: dict[str, str], timeout: float = 90) -> dict[str, Any]:
    """The call record once it is closed and its recording complete."""
    deadline = time.monotonic() + timeout
    record: dict[str, Any] = {}
    while time.monotonic() < deadline:
        record = get(f"{base}/api/calls/{urllib.parse.quote(call_id, safe='')}", headers)
        if record.get("end") and record["recording"]["available"]:
            return record
        time.sleep(0.3)
    raise AssertionError(f"call {call_id} was not closed with a recording: {record}")


def tone_frames(x: np.ndarray, hz: float) -> tuple[int, float]:
    """How many 20 ms frames of ``x`` (16 kHz) have ``hz`` dominant, and their mean RMS."""
    n = SAMPLE_RATE // 50
    frames = x[: len(x) // n * n].reshape(-1, n).astype(np.float64)
    hits = [f for f in frames if frames_at(f, SAMPLE_RATE, hz)]
    return len(hits), float(np.mean([np.sqrt((f**2).mean()) for f in hits])) if hits else 0.0


def test_a_bridged_browser_caller_is_recorded_once(tmp_path: Path) -> None:
    rate = 8000
    agent_port, port = free_port(), sip_port()
    sf.write(str(tmp_path / "agent.wav"),
             np.concatenate([np.zeros(9 * rate, np.int16), tone(AGENT_HZ, AGENT_TONE_S, rate),
                             np.zeros(8 * rate, np.int16)]), rate, subtype="PCM_16")
    agent = baresip_agent(tmp_path / "agent", agent_port, tmp_path / "agent.wav")
    caller = np.concatenate([speech("I want to speak to a human."), np.zeros(40 * RATE, np.int16)])
    caller_tone = np.concatenate([tone(CALLER_HZ, CALLER_TONE_S, RATE, LEVEL), np.zeros(40 * RATE, np.int16)])
    config = {
        "call": {"greeting": "Hello, how can I help?"},
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(50)},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": f"sip:alice@127.0.0.1:{agent_port}",
                    "logged_in": True}],
        "queues": [{"name": "general", "agent_timeout": 10, "max_wait": 60}],
        "recording": {"enabled": True, "folder": "recordings"},
        "models": CALL_FLOW_MODELS,
    }
    try:
        with ServerProcess(tmp_path / "server", config) as server:
            call_id, _, _ = asyncio.run(browser_call(server.url, caller, max_s=60, on_tone=(AGENT_HZ, caller_tone)))
            add_user(f"sqlite:///{tmp_path / 'server' / 'voicebot.db'}", "sup", "supervisor")
            record = recorded(server.url, call_id, login(server.url, "sup"))
            log = server.log()
    finally:
        agent.terminate()
        agent.wait(timeout=10)

    assert record["agent_id"] == "alice", (record, log)
    [path] = (tmp_path / "server" / "recordings").rglob("*.wav")
    with wave.open(str(path)) as w:
        stereo = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    left, right = stereo[:, 0], stereo[:, 1]
    caller_frames, caller_rms = tone_frames(left, CALLER_HZ)
    agent_frames, agent_rms = tone_frames(right, AGENT_HZ)
    # 1.5 s is 75 frames; fed twice it would be about 150 (placed one after the other) or twice as loud.
    assert 0.8 * CALLER_TONE_S * 50 <= caller_frames <= 1.2 * CALLER_TONE_S * 50, (caller_frames, log)
    assert caller_rms < 1.3 * LEVEL / np.sqrt(2), caller_rms
    assert 0.8 * AGENT_TONE_S * 50 <= agent_frames <= 1.2 * AGENT_TONE_S * 50, agent_frames
    assert tone_frames(right, CALLER_HZ)[0] < 5 and tone_frames(left, AGENT_HZ)[0] < 5  # each side in its channel
