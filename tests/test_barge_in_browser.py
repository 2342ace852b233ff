"""Take over from the dashboard in a real browser (Debian's Chromium via Playwright, its microphone a 1 kHz tone):
a SIP caller (our user agent) talks with the bot of `voicebot serve`; the supervisor opens the call, presses
"Take over" and the caller hears the supervisor's tone; the call shows who took over; "Hand back to the bot" gives
the caller back to the bot (who speaks again); a second "Take over", then "Hang up" ends the call and the record's
outcome is taken_over."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from auth_helpers import add_user
from browser_helpers import CHROMIUM_ARGS
from call_models import CALL_FLOW_MODELS
from net_helpers import rtp_ports, sip_port
from sqlalchemy import create_engine, select
from test_admin_browser import log_in
from test_listen_bridge import SipCaller, loud
from test_transfer_live import frames_at

from audio.speech import write_wav
from voicebot.client.local_server import ServerProcess
from voicebot.storage.models import CallRow

CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")]

SUPERVISOR_HZ = 1000
T = TypeVar("T")


class CallerThread:
    """The SIP caller on an event loop of its own (Playwright's sync API holds the test's thread)."""

    def __init__(self, port: int):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.caller: SipCaller = self.run(self._make(port))

    async def _make(self, port: int) -> SipCaller:
        return SipCaller(port)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        self.run(self.caller.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_supervisor_takes_a_call_over_from_the_dashboard(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = sip_port()
    config = {
        "models": CALL_FLOW_MODELS,
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(50)},
        "call": {"greeting": "Hello, this is the Acme assistant. How can I help?"},
    }
    t = np.arange(16000 * 2) / 16000
    mic = write_wav(tmp_path / "supervisor.wav", 0.5 * np.sin(2 * np.pi * SUPERVISOR_HZ * t), 16000)
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic}"]  # loops: the supervisor talks all along
    with ServerProcess(tmp_path / "server", config, start_timeout_s=300) as server, sync_playwright() as p:
        db = server.config["database"]["url"]
        add_user(db, "sup", "supervisor")
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        phone = CallerThread(port)
        caller = phone.caller
        try:
            page = chromium.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            log_in(page, server.url, "sup")
            call_id = phone.run(caller.dial(server.url))
            wait(lambda: any(loud(pcm) for pcm in caller.heard), 30, "the greeting")
            row = page.wait_for_selector("#calls tbody tr[data-call-id]:has-text('5550142')", timeout=30_000)
            assert row.get_attribute("data-call-id") == call_id
            row.click()
            page.wait_for_selector("#detail:not([hidden]) #takeover:not([disabled])", timeout=20_000)
            assert page.is_disabled("#whisper")  # no agent on the call
            page.click("#takeover")
            page.wait_for_function("() => document.getElementById('listen-status').textContent"
                                   ".includes('you have the caller')", timeout=30_000)
            assert page.inner_text("#listen-stop") == "Hang up"
            page.wait_for_function("() => document.getElementById('detail-badges').textContent"
                                   ".includes('taken over by sup')", timeout=20_000)
            mark = len(caller.heard)
            wait(lambda: frames_at(np.frombuffer(b"".join(caller.heard[mark:]), np.int16), 16000,
                                   SUPERVISOR_HZ) > 50, 30, "the caller hearing the supervisor")
            # Handed back: the bot has the caller again (it says so), and the supervisor may take over again.
            page.click("#handback")
            page.wait_for_function("() => document.getElementById('listen-status').textContent"
                                   ".includes('handed back to the bot')", timeout=30_000)
            assert page.is_hidden("#handback") and page.is_hidden("#listen-stop")
            back = len(caller.heard)
            wait(lambda: sum(loud(pcm) for pcm in caller.heard[back:]) > 25, 30, "the caller hearing the bot again")
            page.wait_for_selector("#detail:not([hidden]) #takeover:not([disabled])", timeout=20_000)
            page.click("#takeover")
            page.wait_for_function("() => document.getElementById('listen-status').textContent"
                                   ".includes('you have the caller')", timeout=30_000)
            mark = len(caller.heard)
            wait(lambda: frames_at(np.frombuffer(b"".join(caller.heard[mark:]), np.int16), 16000,
                                   SUPERVISOR_HZ) > 50, 30, "the caller hearing the supervisor again")
            page.click("#listen-stop")
            wait(lambda: caller.leg.state == "ended", 20, "the call to end")
            assert not errors, errors
        finally:
            phone.close()
            chromium.close()
        engine = create_engine(db)
        deadline = time.monotonic() + 10
        with engine.connect() as conn:
            while True:  # the record is closed once the server has seen the leg end
                row_db = conn.execute(select(CallRow).where(CallRow.id == call_id)).one()
                if row_db.end is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
    assert row_db.outcome == "taken_over" and row_db.taken_over_by == "sup"
    assert row_db.end_reason == "supervisor_hangup"
