"""The agent page in headless Chromium shows only the buttons that apply now, through a real call: a SIP caller
(our user agent) asks the bot for a human, the page (the agent's phone) rings -> the agent answers -> talks ->
hangs up -> wrap-up -> "Ready" makes her available again.

Screenshots of each state go to ``$VOICEBOT_SCREENSHOTS`` (default ``build/screenshots/``) as ``agent-*.png``.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from auth_helpers import add_user
from browser_helpers import with_microphone
from call_models import CALL_FLOW_MODELS
from net_helpers import rtp_ports, sip_port
from sqlalchemy import select
from test_supervisor_browser import screenshots

from audio.pcm import FRAME_BYTES, SAMPLE_RATE
from audio.speech import espeak_ng, write_wav
from dialogs.db.engine import Database
from dialogs.db.models import Contact
from telephony.config import SipConfig
from telephony.sip.ua import UserAgent
from voicebot.client.local_server import ServerProcess
from voicebot.server.agents import controls

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),  # a server start and a call through the bot on a shared machine
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]

VISIBLE = "() => [...new Set([...document.querySelectorAll('[data-control]')].filter((e) => !e.hidden)" \
          ".map((e) => e.dataset.control))].sort()"


def speech_pcm(text: str) -> bytes:
    speech, _ = espeak_ng(text, rate=150, sample_rate=SAMPLE_RATE)
    return bytes((speech * 20000).astype(np.int16).tobytes())


def call_for_a_human(bot_port: int, talk: threading.Event, stop: threading.Event, done: threading.Event) -> None:
    """Dial the bot, ask for a human after the greeting, tell the agent about a return once ``talk`` is set,
    stay on the line until ``stop`` or the call ends."""
    pcm = speech_pcm("I want to speak to a human.")
    later = speech_pcm("I would like to return my order, please.") + bytes(FRAME_BYTES * 50)

    async def main() -> None:
        ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{sip_port()}", listen_tcp=None, **rtp_ports(100)))
        await ua.start()
        try:
            leg = await ua.dial(f"sip:bot@127.0.0.1:{bot_port}", caller="5550142")
            await asyncio.sleep(6)  # the greeting
            for i in range(0, len(pcm), FRAME_BYTES):
                await leg.write_audio(pcm[i : i + FRAME_BYTES])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 120
            while loop.time() < deadline and leg.state == "answered" and not stop.is_set():
                if talk.is_set():
                    talk.clear()
                    for i in range(0, len(later), FRAME_BYTES):
                        await leg.write_audio(later[i : i + FRAME_BYTES])
                await asyncio.sleep(0.2)
            if leg.state == "answered":
                await leg.hangup()
        finally:
            await ua.stop()
            done.set()

    asyncio.run(main())


def visible(page: Any) -> list[str]:
    return list(page.evaluate(VISIBLE))


def test_controls_follow_the_agent_state() -> None:
    assert controls("offline", None, False) == ("available",)
    assert controls("ringing", "ringing", True) == ("answer", "decline")
    assert controls("ringing", "ringing", False) == ("decline",)  # her SIP phone rings, not the page
    assert controls("ringing", "answered", True) == ("accept", "decline")  # agent_confirm
    assert controls("busy", "connected", True) == ("hangup",)
    assert controls("wrap_up", None, True) == ("ready", "paused", "offline")
    assert controls("paused", None, False) == ("available", "offline")


def test_agent_page_walks_ringing_connected_wrap_up_ready(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = sip_port()
    t = np.arange(60 * 48000) / 48000
    mic = write_wav(tmp_path / "mic.wav", (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
    config = {
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(100)},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": "webrtc"}],
        "queues": [{"name": "general", "agent_timeout": 40, "max_wait": 90, "wrap_up": 300}],
        "models": CALL_FLOW_MODELS,
    }
    talk, stop, done = threading.Event(), threading.Event(), threading.Event()
    shots = screenshots()
    # start_timeout_s: the models load slowly on a shared machine
    with ServerProcess(tmp_path / "server", config, start_timeout_s=400) as server, sync_playwright() as p:
        add_user(server.config["database"]["url"], "alice", "agent")
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=with_microphone(mic))
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            target = "/agent?agent=alice&raw=1"
            page.goto(server.url + target)
            page.wait_for_url("**/login?next=*", timeout=10_000)
            page.fill("#username", "alice")
            page.fill("#password", "pw-alice")
            page.click("#submit")
            page.wait_for_url("**" + target, timeout=10_000)
            page.wait_for_function("() => document.getElementById('state').textContent.startsWith('offline')",
                                   timeout=10_000)
            assert visible(page) == ["available"]
            page.click("button[data-state=available]")
            page.wait_for_function("() => document.getElementById('state').textContent.startsWith('available')",
                                   timeout=10_000)
            assert visible(page) == ["offline", "paused"]
            page.click("#usephone")
            page.wait_for_function("() => document.getElementById('phonestatus').textContent === 'phone: connected'",
                                   timeout=20_000)

            caller = threading.Thread(target=call_for_a_human, args=(port, talk, stop, done), daemon=True)
            caller.start()
            page.wait_for_selector("#answer:not([hidden])", timeout=60_000)
            ringing = visible(page)
            page.screenshot(path=str(shots / "agent-ringing.png"), full_page=True)

            page.click("#answer")
            page.wait_for_function("() => document.getElementById('callstatus').textContent === '(connected)'",
                                   timeout=30_000)
            page.wait_for_selector("#hangup:not([hidden])", timeout=10_000)
            connected = visible(page)
            card = page.inner_text("#card")
            # What the caller says on the bridged call reaches the page as it is transcribed.
            talk.set()
            try:
                page.wait_for_function("() => document.getElementById('live').textContent.includes('caller:')",
                                       timeout=60_000)
            finally:
                live = page.inner_text("#live")
            page.wait_for_function("() => !['', '\u2014'].includes(document.getElementById('suggest').textContent.trim())",
                                   timeout=10_000)
            suggested = page.inner_text("#suggest")
            page.screenshot(path=str(shots / "agent-connected.png"), full_page=True)

            page.click("#hangup")
            page.wait_for_function("() => document.getElementById('state').textContent.startsWith('wrap_up')",
                                   timeout=30_000)
            page.wait_for_selector("#ready:not([hidden])", timeout=10_000)
            wrap_up = visible(page)
            page.wait_for_function("() => document.getElementById('wrapsummary').value !== ''", timeout=10_000)
            proposed = page.input_value("#wrapsummary")
            page.fill("#wrapsummary", "Caller wants to return an order. Agent sent the label.")
            page.click("#savewrap")
            page.wait_for_function("() => document.getElementById('wrapstatus').textContent !== "
                                   "'proposed by the bot: edit and save'", timeout=10_000)
            wrap_status = page.inner_text("#wrapstatus")
            page.screenshot(path=str(shots / "agent-wrap-up.png"), full_page=True)

            page.click("#ready")
            page.wait_for_function("() => document.getElementById('state').textContent.startsWith('available')",
                                   timeout=10_000)
            page.wait_for_selector("#ready[hidden]", state="attached", timeout=10_000)
            ready = visible(page)
            page.screenshot(path=str(shots / "agent-ready.png"), full_page=True)
            error = page.inner_text("#error")
        finally:
            stop.set()
            browser.close()
        assert done.wait(30), server.log()
        with Database(server.config["database"]["url"]).session() as s:
            summaries = list(s.scalars(select(Contact.summary)))

    assert ringing == ["answer", "decline"], ringing
    assert connected == ["hangup"], connected
    assert card.strip() == "not verified"  # the caller gave no identity
    assert live.startswith("caller:") and len(live) > len("caller: ") + 5, live
    assert "%" in suggested or suggested == "no matching knowledge", suggested  # never an error message
    assert wrap_up == ["offline", "paused", "ready"], wrap_up
    assert proposed.startswith("caller 5550142.") and "The caller told the agent" in proposed, proposed
    assert wrap_status == "saved"
    assert "Caller wants to return an order. Agent sent the label." in summaries, summaries  # the bot's memory
    assert ready == ["offline", "paused"], ready
    assert error == ""
