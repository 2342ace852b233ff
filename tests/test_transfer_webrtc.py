"""A WebRTC agent: the agent page in headless Chromium is the agent's phone. A SIP caller (our user agent)
asks the bot for a human; the queue rings the page, which answers by itself (``?autoanswer=1``), hears the
whisper, and is bridged: the caller hears the page's microphone (a 3000 Hz tone from a fake device)."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from auth_helpers import add_user, login
from browser_helpers import agent_phone, with_microphone
from call_models import CALL_FLOW_MODELS
from net_helpers import rtp_ports, sip_port
from test_transfer_live import AGENT_HZ, frames_at

from audio.speech import espeak_ng, write_wav
from telephony.config import SipConfig
from telephony.sip.ua import UserAgent
from voicebot.client.local_server import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]



def get(url: str, auth: dict[str, str]) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth), timeout=5) as res:
        return json.loads(res.read())


def call_and_listen(bot_port: int, heard: list[bytes], done: threading.Event) -> None:
    """Dial the bot, ask for a human after the greeting, listen until the agent's tone was heard for 2 s."""
    speech, _ = espeak_ng("I want to speak to a human.", rate=150, sample_rate=16000)
    pcm = (speech * 20000).astype(np.int16).tobytes()

    async def main() -> None:
        ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{sip_port()}", listen_tcp=None, **rtp_ports(100)))
        await ua.start()
        try:
            leg = await ua.dial(f"sip:bot@127.0.0.1:{bot_port}", caller="5550142")
            leg.add_sink(heard.append)
            await asyncio.sleep(6)  # the greeting
            for i in range(0, len(pcm), 640):
                await leg.write_audio(pcm[i : i + 640])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 45
            while loop.time() < deadline and leg.state == "answered":
                if frames_at(np.frombuffer(b"".join(heard[-150:]), np.int16), 16000, AGENT_HZ) > 100:
                    break
                await asyncio.sleep(0.5)
            await leg.hangup()
        finally:
            await ua.stop()
            done.set()

    asyncio.run(main())


def test_agent_page_is_the_agents_phone(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = sip_port()
    t = np.arange(90 * 48000) / 48000
    mic = write_wav(tmp_path / "mic.wav", (0.3 * np.sin(2 * np.pi * AGENT_HZ * t)).astype(np.float32), 48000)
    config = {
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(100)},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": "webrtc"}],
        "queues": [{"name": "general", "agent_timeout": 15, "max_wait": 60}],
        "models": CALL_FLOW_MODELS,
    }
    args = with_microphone(mic)
    heard: list[bytes] = []
    done = threading.Event()
    with ServerProcess(tmp_path / "server", config) as server, sync_playwright() as p:
        db = server.config["database"]["url"]
        add_user(db, "alice", "agent")
        add_user(db, "sup", "supervisor")
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=args)
        try:
            page = browser.new_page()
            # Without a session the agent page sends her to the login form, and back after it.
            agent_phone(page, server.url)
            caller = threading.Thread(target=call_and_listen, args=(port, heard, done), daemon=True)
            caller.start()
            # The page shows the hand-off packet while its phone rings / talks.
            page.wait_for_function("() => document.getElementById('summary').textContent.includes('person')",
                                   timeout=60_000)
            summary = page.inner_text("#summary")
            assert done.wait(90), server.log()
            loud = page.evaluate("window.remoteLoud")
        finally:
            browser.close()
        record: dict[str, Any] = {}
        auth = login(server.url, "sup")
        for _ in range(100):  # the transfer is recorded, and the record closed, a moment after the caller hung up
            calls = get(f"{server.url}/api/calls", auth)
            record = get(f"{server.url}/api/calls/{calls[0]['id']}", auth) if calls else {}
            if record.get("agent_id") and record.get("outcome"):
                break
            time.sleep(0.2)

    assert "person" in summary.lower()
    assert loud >= 10, f"the page heard {loud} loud 100 ms windows (the whisper)"
    assert frames_at(np.frombuffer(b"".join(heard), np.int16), 16000, AGENT_HZ) > 100, "the caller never heard the agent"
    assert record.get("outcome") == "handoff" and record.get("agent_id") == "alice", record
