"""An agent is told when the caller's side of their call is lost: a SIP caller (our user agent) asks the bot for a
human and is bridged to the agent page in headless Chromium (the agent's phone, auto-answer); then the caller's
phone vanishes (its sockets close: no more RTP, no BYE). Once the server notices (``sip.no_media_timeout_s``) the
page says the call ended and why, the agent is in wrap-up with "Ready" as after a hang-up, and nobody is left in
the queue; "Ready" makes her available and the notice goes. An agent whose phone is a SIP phone (our user agent,
auto-answering) gets a BYE instead, and the same wrap-up and reason. Why a call ended is read from the leg that
ended first (checked on real legs without a call)."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from auth_helpers import add_user, login
from browser_helpers import agent_phone, with_microphone
from call_models import CALL_FLOW_MODELS
from net_helpers import rtp_ports, sip_port
from test_barge_in_browser import CallerThread, wait
from test_listen_bridge import SipCaller, loud, until

from audio.pcm import FRAME_BYTES, SAMPLE_RATE
from audio.speech import espeak_ng, write_wav
from telephony.call import CallLeg
from telephony.config import SipConfig
from telephony.sip.ua import UserAgent
from voicebot.client.local_server import ServerProcess
from voicebot.cluster.pages import page_call_ending
from voicebot.server.caller_leg import BrowserLeg
from voicebot.transfer.ending import why_ended

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]

STATE = "() => document.getElementById('state').textContent"


def test_why_a_bridged_call_ended_is_read_from_the_leg_that_ended_first() -> None:
    async def legs(caller_end: str | None, agent_end: str | None) -> tuple[BrowserLeg, BrowserLeg]:
        caller, agent = BrowserLeg("c", "5550142"), BrowserLeg("a", None)
        if caller_end is not None:
            caller.peer_gone(caller_end)
        if agent_end == "local hangup":
            await agent.hangup()
        elif agent_end is not None:
            agent.peer_gone(agent_end)
        return caller, agent

    def reason(caller_end: str | None, agent_end: str | None) -> str:
        return why_ended(*asyncio.run(legs(caller_end, agent_end))).reason

    assert reason("remote hangup", None) == "caller_hangup"
    assert reason("no media", None) == "caller_lost"
    assert reason("error", None) == "caller_lost"
    assert reason(None, "local hangup") == "agent_hangup"  # the page's Hang up button
    assert reason(None, "remote hangup") == "agent_hangup"  # a SIP phone's BYE
    assert reason(None, "no media") == "agent_lost"
    assert reason(None, None) == "agent_lost"  # both up: the queue ended it because the agent's media stopped
    assert why_ended(None, None).reason == "ended"
    # A page call from another node, seen from the page's node.
    node_lost = page_call_ending(*asyncio.run(legs("no media", None)))
    assert node_lost.reason == "caller_lost" and "node may be down" in node_lost.text
    assert page_call_ending(*asyncio.run(legs("remote hangup", None))).reason == "ended"
    assert page_call_ending(*asyncio.run(legs("local hangup", "local hangup"))).reason == "agent_hangup"


def get(url: str, headers: dict[str, str]) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as res:
        return json.loads(res.read())


def test_agent_page_is_told_when_the_callers_line_drops_and_goes_to_wrap_up(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = sip_port()
    t = np.arange(30 * 48000) / 48000
    mic = write_wav(tmp_path / "mic.wav", (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
    config = {
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(50), "no_media_timeout_s": 3},
        "call": {"greeting": "Hello, this is the Acme assistant. How can I help?"},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": "webrtc"}],
        "queues": [{"name": "general", "agent_timeout": 40, "max_wait": 90, "wrap_up": 300}],
        "models": CALL_FLOW_MODELS,
    }
    speech, _ = espeak_ng("I want to speak to a human.", rate=150, sample_rate=SAMPLE_RATE)
    request = (speech * 20000).astype(np.int16).tobytes()

    async def vanish(phone: CallerThread) -> None:
        """The caller's phone vanishes: its sockets close, no more RTP, no BYE, nothing it would answer."""
        caller = phone.caller
        await caller.leg.rtp.close()
        await caller.ua.endpoint.close()

    with ServerProcess(tmp_path / "server", config, start_timeout_s=400) as server, sync_playwright() as p:
        add_user(server.config["database"]["url"], "alice", "agent")
        auth = login(server.url, "alice")
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=with_microphone(mic))
        phone = CallerThread(port)
        caller = phone.caller
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            agent_phone(page, server.url, "alice")
            assert page.is_hidden("#callended")
            call_id = phone.run(caller.dial(server.url))
            wait(lambda: any(loud(pcm) for pcm in caller.heard), 30, "the greeting")
            wait(lambda: not any(loud(pcm) for pcm in caller.heard[-40:]), 30, "the end of the greeting")
            phone.run(caller.say(request))
            page.wait_for_function("() => document.getElementById('callstatus').textContent === '(connected)'",
                                   timeout=90_000)
            phone.run(vanish(phone))
            page.wait_for_selector("#callended:not([hidden])", timeout=60_000)
            told = page.inner_text("#callended")
            page.wait_for_function(f"() => ({STATE})().startsWith('wrap_up')", timeout=20_000)
            page.wait_for_selector("#ready:not([hidden])", timeout=10_000)
            agent = get(f"{server.url}/api/agents/alice", auth)
            queues = get(f"{server.url}/api/queues", auth)
            page.click("#ready")
            page.wait_for_function(f"() => ({STATE})().startsWith('available')", timeout=10_000)
            page.wait_for_selector("#callended", state="hidden", timeout=10_000)
            after = get(f"{server.url}/api/agents/alice", auth)
        finally:
            phone.loop.call_soon_threadsafe(phone.loop.stop)
            phone.thread.join(5)
            browser.close()

    assert told.startswith("Your call ended: The caller's line dropped (no media)"), told
    assert agent["state"] == "wrap_up" and agent["current"] is None
    assert agent["ended"] == {"call_id": call_id, "reason": "caller_lost", "text": told.removeprefix("Your call ended: ")}
    general = next(q for q in queues["queues"] if q["name"] == "general")
    assert general["waiting"] == [], general
    assert after["state"] == "available" and after["ended"] is None
    assert not errors, errors


def test_a_sip_agent_phone_gets_a_bye_when_the_callers_line_drops(tmp_path: Path) -> None:
    port, agent_port = sip_port(), sip_port()
    config = {
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(50), "no_media_timeout_s": 3},
        "call": {"greeting": "Hello, this is the Acme assistant. How can I help?"},
        "agents": [{"id": "bob", "name": "Bob Jones", "contact": f"sip:bob@127.0.0.1:{agent_port}"}],
        "queues": [{"name": "general", "agent_timeout": 40, "max_wait": 90, "wrap_up": 300}],
        "models": CALL_FLOW_MODELS,
    }
    speech, _ = espeak_ng("I want to speak to a human.", rate=150, sample_rate=SAMPLE_RATE)
    request = (speech * 20000).astype(np.int16).tobytes()
    legs: list[CallLeg] = []

    async def answer(leg: CallLeg) -> None:
        """Bob's phone: answers at once and sends audio (a quiet hum) until the call ends."""
        legs.append(leg)
        await leg.answer()
        hum = (np.sin(2 * np.pi * 200 * np.arange(FRAME_BYTES // 2) / SAMPLE_RATE) * 2000).astype(np.int16).tobytes()
        while leg.state == "answered":
            await leg.write_audio(hum)

    async def run(server: ServerProcess, auth: dict[str, str]) -> tuple[str, str, Any]:
        agent = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{agent_port}", listen_tcp=None, **rtp_ports(50)),
                          on_call=answer)
        await agent.start()
        caller = SipCaller(port)
        try:
            request_ = urllib.request.Request(f"{server.url}/api/agents/bob/state", method="POST",
                                              data=json.dumps({"state": "available"}).encode(),
                                              headers={**auth, "Content-Type": "application/json"})
            await asyncio.to_thread(urllib.request.urlopen, request_, timeout=10)
            call_id = await caller.dial(server.url)
            await until(lambda: any(loud(pcm) for pcm in caller.heard), 30, "the greeting")
            await until(lambda: not any(loud(pcm) for pcm in caller.heard[-40:]), 30, "the end of the greeting")
            await caller.say(request)
            await until(lambda: bool(legs) and legs[0].state == "answered", 90, "bob's phone to answer")
            deadline = asyncio.get_running_loop().time() + 60
            while ((await asyncio.to_thread(get, f"{server.url}/api/agents/bob", auth)).get("current") or {}).get(
                    "status") != "connected":  # bridged after the whisper; then the caller's line drops mid-call
                assert asyncio.get_running_loop().time() < deadline, "bob was never bridged to the caller"
                await asyncio.sleep(0.2)
            await caller.leg.rtp.close()
            await caller.ua.endpoint.close()
            reason = await asyncio.wait_for(legs[0].wait_ended(), 60)
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                bob = await asyncio.to_thread(get, f"{server.url}/api/agents/bob", auth)
                if bob["ended"] is not None or asyncio.get_running_loop().time() > deadline:
                    return call_id, reason, bob
                await asyncio.sleep(0.2)
        finally:
            await agent.stop()

    with ServerProcess(tmp_path / "server", config, start_timeout_s=400) as server:
        add_user(server.config["database"]["url"], "bob", "agent")
        call_id, reason, bob = asyncio.run(run(server, login(server.url, "bob")))

    assert reason == "remote hangup", "bob's phone should get a BYE"
    assert bob["state"] == "wrap_up" and bob["current"] is None
    assert bob["ended"]["call_id"] == call_id and bob["ended"]["reason"] == "caller_lost", bob
