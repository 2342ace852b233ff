"""A closed agent page during ringing, through a real call: a SIP caller (our user agent) asks the bot for a human,
the queue rings alice's page (headless Chromium, her own browser context); her context closes while it rings, and
the queue offers the caller to bob's page at once (it answers by itself), long before alice's ring would have timed
out (``agent_timeout`` 60 s): the page's events websocket closing is what tells the server her page is gone."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from auth_helpers import add_user, login
from browser_helpers import agent_phone, with_microphone
from call_models import CALL_FLOW_MODELS
from net_helpers import rtp_ports, sip_port
from test_agent_page_browser import call_for_a_human
from test_transfer_webrtc import get

from audio.speech import write_wav
from voicebot.client.local_server import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),  # a server start and a call through the bot on a shared machine
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]

AGENT_TIMEOUT_S = 60
MOVED_ON_MS = 20_000  # bob must have the call well before alice's ring would have timed out


def test_a_page_closed_while_it_rings_sends_the_caller_to_the_next_agent_at_once(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = sip_port()
    t = np.arange(90 * 48000) / 48000
    mic = write_wav(tmp_path / "mic.wav", (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
    config = {
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(100)},
        "agents": [{"id": "alice", "contact": "webrtc"}, {"id": "bob", "contact": "webrtc"}],
        "queues": [{"name": "general", "agent_timeout": AGENT_TIMEOUT_S, "max_wait": 180}],
        "models": CALL_FLOW_MODELS,
    }
    talk, stop, done = threading.Event(), threading.Event(), threading.Event()
    with ServerProcess(tmp_path / "server", config, start_timeout_s=400) as server, sync_playwright() as p:
        for agent in ("alice", "bob"):
            add_user(server.config["database"]["url"], agent, "agent")
        add_user(server.config["database"]["url"], "sup", "supervisor")
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=with_microphone(mic))
        try:
            alice_context = browser.new_context()
            alice = alice_context.new_page()
            agent_phone(alice, server.url, "alice")  # available first: longest idle, offered first
            alice.uncheck("#autoanswer")  # she lets it ring
            bob = browser.new_context().new_page()
            agent_phone(bob, server.url, "bob")  # answers by himself

            caller = threading.Thread(target=call_for_a_human, args=(port, talk, stop, done), daemon=True)
            caller.start()
            alice.wait_for_function("() => document.getElementById('callstatus').textContent === '(ringing)'",
                                    timeout=90_000)
            alice_context.close()  # the tab (and its browser context) is gone while it rings
            bob.wait_for_function("() => document.getElementById('callstatus').textContent === '(connected)'",
                                  timeout=MOVED_ON_MS)
            alice_now = get(f"{server.url}/api/agents/alice", login(server.url, "sup"))
        finally:
            stop.set()
            browser.close()
        assert done.wait(30), server.log()
        log = server.log()

    assert "agent alice not reached: 480 page disconnected" in log, log
    assert "the page's events websocket is gone: its phone is closed" in log, log
    assert alice_now["state"] == "paused", alice_now  # not offered calls on a page that is gone
