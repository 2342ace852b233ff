"""Agent assist on the agent page in headless Chromium, through a real verified call: a SIP caller with Jane
Doe's number asks the bot to cancel her subscription, types her PIN, presses 0 for a person; the page (the
agent's phone) answers; what the caller then tells the agent changes the running summary, and the next best
action ("Cancel the subscription") runs on her account after the agent confirms, as the agent.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from auth_helpers import add_user, login
from browser_helpers import agent_phone, with_microphone
from net_helpers import rtp_ports, sip_port
from sqlalchemy import select

from audio.pcm import FRAME_BYTES, SAMPLE_RATE
from audio.speech import espeak_ng, write_wav
from dialogs.db.engine import Database
from dialogs.db.models import AuditLog, Subscription
from telephony.config import SipConfig
from telephony.sip.ua import UserAgent
from voicebot.client.local_server import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),  # a server start, a call through the bot and two transcriptions on a shared machine
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]

JANE = "+15551230001"  # the demo's Jane Doe: caller ID, PIN 4321, an active subscription
SAID = ("I am not happy with the service at all.", "Please cancel my subscription today.")
CAUGHT_UP = """() => {
  const lines = [...document.querySelectorAll('#live p.caller')].length;
  return lines >= 1 && Number(document.getElementById('running').dataset.turns) === lines;
}"""


def speech_pcm(text: str) -> bytes:
    speech, _ = espeak_ng(text, rate=150, sample_rate=SAMPLE_RATE)
    return bytes((speech * 20000).astype(np.int16).tobytes())


class Ears:
    """What the caller hears: when the bot last spoke (an audio sink of the caller's leg; wall-clock times)."""

    def __init__(self) -> None:
        self.last_loud = 0.0

    def __call__(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
        if samples.size and float(np.sqrt(np.mean(samples**2))) > 500:
            self.last_loud = time.time()

    async def done_speaking(self, since: float, quiet_s: float = 1.5, timeout_s: float = 90) -> None:
        """Until the bot has spoken after ``since`` (epoch seconds) and then stayed quiet for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.last_loud >= since and time.time() - self.last_loud > quiet_s:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("the bot did not say its turn")


def started(turn: dict[str, Any]) -> float:
    """A turn's start in epoch seconds (the record's times are UTC)."""
    at = datetime.fromisoformat(str(turn["start"]))
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def bot_turns(base_url: str, headers: dict[str, str], call_id: str) -> list[dict[str, Any]]:
    """The bot's turns so far in the call's record (read as a supervisor)."""
    request = urllib.request.Request(f"{base_url}/api/calls/{urllib.parse.quote(call_id, safe='')}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            record = json.loads(response.read())
    except urllib.error.HTTPError:
        return []  # not recorded yet
    return [t for t in record.get("turns", []) if t.get("speaker") == "bot"]


def verified_caller(bot_port: int, base_url: str, headers: dict[str, str], talk: threading.Event,
                    stop: threading.Event, done: threading.Event, errors: list[BaseException]) -> None:
    """Jane calls, asks to cancel her subscription, types her PIN, presses 0 for a person; once ``talk`` is set
    she says :data:`SAID` to the agent, one sentence after the other; she stays on until ``stop``. Each step
    waits for the bot's question in the call record, then for the bot to finish saying it."""

    async def main() -> None:
        ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{sip_port()}", listen_tcp=None, **rtp_ports(100)))
        await ua.start()

        async def asked(expect: str | None) -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                turns = await asyncio.to_thread(bot_turns, base_url, headers, leg.call_id)
                if turns and (expect is None or ((turns[-1].get("extra") or {}).get("trace") or {}).get("expect")
                              == expect):
                    await ears.done_speaking(started(turns[-1]))
                    return
                await asyncio.sleep(0.3)
            raise TimeoutError(f"the bot never asked for {expect}")

        try:
            leg = await ua.dial(f"sip:bot@127.0.0.1:{bot_port}", caller=JANE)
            ears = Ears()
            leg.add_sink(ears)
            await asked(None)  # the greeting
            pcm = speech_pcm("I want to cancel my subscription.")
            for i in range(0, len(pcm), FRAME_BYTES):
                await leg.write_audio(pcm[i : i + FRAME_BYTES])
            await asked("verify_factor")
            leg.send_dtmf("4321#")
            await asked("confirm")  # are you sure?
            leg.send_dtmf("0")  # a person, please
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 300
            while loop.time() < deadline and leg.state == "answered" and not stop.is_set():
                if talk.is_set():
                    talk.clear()
                    for sentence in SAID:
                        words = speech_pcm(sentence) + bytes(FRAME_BYTES * 75)  # 1.5 s pause: two turns
                        for i in range(0, len(words), FRAME_BYTES):
                            await leg.write_audio(words[i : i + FRAME_BYTES])
                await asyncio.sleep(0.2)
            if leg.state == "answered":
                await leg.hangup()
        except BaseException as exc:
            errors.append(exc)
        finally:
            await ua.stop()
            done.set()

    asyncio.run(main())


def test_summary_and_next_best_action_on_a_verified_bridged_call(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = sip_port()
    mic = write_wav(tmp_path / "mic.wav", np.zeros(60 * 48000, dtype=np.float32), 48000)  # the agent listens
    config = {
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(100)},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": "webrtc"}],
        "queues": [{"name": "general", "agent_timeout": 40, "max_wait": 120, "wrap_up": 300},
                   {"name": "retention", "agent_timeout": 40, "max_wait": 120, "wrap_up": 300}],
    }
    talk, stop, done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []
    # start_timeout_s: the models load slowly on a shared machine
    with ServerProcess(tmp_path / "server", config, start_timeout_s=400) as server, sync_playwright() as p:
        add_user(server.config["database"]["url"], "alice", "agent")
        add_user(server.config["database"]["url"], "sup", "supervisor")
        sup = login(server.url, "sup")
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=with_microphone(mic))
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            agent_phone(page, server.url)
            caller = threading.Thread(target=verified_caller, args=(port, server.url, sup, talk, stop, done, errors), daemon=True)
            caller.start()
            page.wait_for_function("() => document.getElementById('callstatus').textContent === '(connected)'",
                                   timeout=150_000)
            page.wait_for_function("() => document.getElementById('running').dataset.turns === '0'", timeout=20_000)
            at_hand_off = page.inner_text("#running")
            page.wait_for_selector("#nbarun:not([disabled])", timeout=20_000)
            proposed = page.inner_text("#nba")
            talk.set()
            # The summary has caught up with the live transcript: as many caller turns as caller lines shown.
            page.wait_for_function(CAUGHT_UP, timeout=180_000)
            running, live = page.evaluate("() => [document.getElementById('running').innerText, "
                                          "document.getElementById('live').innerText]")

            page.click("#nbarun")
            page.wait_for_selector("#nbaconfirm:not([hidden])", timeout=5_000)
            question = page.inner_text("#nbaquestion")
            page.click("#nbayes")
            page.wait_for_function("() => document.getElementById('nbaresult').textContent !== ''", timeout=20_000)
            result = page.inner_text("#nbaresult")
            page.wait_for_function("() => document.getElementById('live').textContent.includes('you: Cancel')",
                                   timeout=20_000)
            error = page.inner_text("#error")
        finally:
            stop.set()
            browser.close()
        assert done.wait(30), server.log()
        with Database(server.config["database"]["url"]).session() as s:
            status = s.scalars(select(Subscription.status).where(Subscription.customer_id == 1)).one()
            audit = [(a.actor, a.entity, a.action) for a in s.scalars(select(AuditLog).where(AuditLog.customer_id == 1))]

    assert not errors, errors
    assert "Caller Jane Doe, verified" in at_hand_off and "cancel subscription" in at_hand_off, at_hand_off
    assert "Cancel the subscription" in proposed and "pending in the hand-off" in proposed, proposed
    caller_lines = [line.removeprefix("caller: ") for line in live.splitlines() if line.startswith("caller: ")]
    assert caller_lines, live
    assert running != at_hand_off  # it follows the conversation
    assert caller_lines[-1].strip() in running, (caller_lines, running)  # and names what was said
    assert question.startswith("Run \u201cCancel the subscription\u201d on the caller's account"), question
    assert result.startswith("Cancel the subscription: ok (plan Premium monthly"), result
    assert status == "cancelled"
    assert ("agent:alice", "subscription", "cancel") in audit, audit
    assert error == ""
