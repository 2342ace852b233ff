"""Call recording over real SIP calls to `voicebot serve` (our user agent as the caller's phone, speech
synthesised by espeak-ng, transcribed by the server's Whisper):

- a recorded call: the WAV exists (0600), is stereo, lasts as long as the call, holds the caller's speech in the
  left channel where the record says they spoke and the bot's greeting in the right; supervisors play it (the
  file's bytes), an agent may not; `voicebot gdpr export` names it and `gdpr delete` deletes it;
- a decline by words ("no recording") and one by key 9: the caller hears the confirmation, the file is gone while
  the call goes on and after it, and the record says declined.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import urllib.parse
import wave
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from auth_helpers import add_user, login
from browser_helpers import CHROMIUM_ARGS
from call_models import CALL_FLOW_MODELS
from net_helpers import rtp_ports, sip_port

from audio.pcm import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE
from audio.speech import espeak_ng
from telephony.config import SipConfig
from telephony.sip.ua import UserAgent
from voicebot.client.local_server import ServerProcess

pytestmark = pytest.mark.slow

JANE = "+15551230001"  # customer 1 of the demo data
LOUD = 300.0  # mean |sample| of a 20 ms frame that holds speech (G.711 silence stays far below)


def speech(text: str) -> bytes:
    samples, _ = espeak_ng(text, rate=150, sample_rate=SAMPLE_RATE)
    return (samples * 20000).astype(np.int16).tobytes()


def frame_levels(pcm: bytes) -> np.ndarray:
    x = np.frombuffer(pcm[: len(pcm) // FRAME_BYTES * FRAME_BYTES], np.int16).astype(float)
    return np.abs(x.reshape(-1, FRAME_SAMPLES)).mean(axis=1)


class Caller:
    """A SIP phone dialling the bot."""

    def __init__(self, bot_port: int, number: str):
        self.bot_port, self.number = bot_port, number
        self.ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{sip_port()}", listen_tcp=None,
                                      **rtp_ports(50)))
        self.leg: Any = None

    async def dial(self) -> str:
        await self.ua.start()
        self.leg = await self.ua.dial(f"sip:bot@127.0.0.1:{self.bot_port}", caller=self.number, ring_timeout=30)
        return str(self.leg.call_id)

    async def say(self, pcm: bytes) -> None:
        for i in range(0, len(pcm), FRAME_BYTES):
            await self.leg.write_audio(pcm[i: i + FRAME_BYTES])

    async def close(self) -> None:
        if self.leg is not None and self.leg.state != "ended":
            await self.leg.hangup()
        await self.ua.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    port = sip_port()
    config = {
        "models": CALL_FLOW_MODELS,
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(50)},
        "recording": {"enabled": True, "folder": "recordings"},
        "call": {"silence_prompt_s": 30, "silence_hangup_s": 30},
    }
    with ServerProcess(tmp_path_factory.mktemp("recording") / "server", config, start_timeout_s=300) as srv:
        db = srv.config["database"]["url"]
        add_user(db, "sup", "supervisor")
        add_user(db, "ann", "agent", agent_id="a1")
        srv.sip_port = port  # type: ignore[attr-defined]
        srv.auth = login(srv.url, "sup")  # type: ignore[attr-defined]
        yield srv


def record_of(server: Any, call_id: str) -> dict[str, Any]:
    res = httpx.get(f"{server.url}/api/calls/{urllib.parse.quote(call_id, safe='')}", headers=server.auth, timeout=30)
    assert res.status_code == 200, res.text
    return res.json()


async def bot_said(server: Any, call_id: str, n: int, timeout: float = 90) -> list[str]:
    """Wait until the bot has said its ``n``-th turn to the end (the record notes when it was played); the texts of
    its turns."""
    end = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < end:
        try:
            turns = (await asyncio.to_thread(record_of, server, call_id))["turns"]
        except AssertionError:  # not in the record yet
            turns = []
        said = [t for t in turns if t["speaker"] == "bot"]
        if len(said) >= n and said[n - 1]["end"] is not None:
            return [t["text"] for t in said]
        await asyncio.sleep(0.1)
    raise AssertionError(f"the bot did not say {n} turns in {timeout} s")


async def closed_record(server: Any, call_id: str, timeout: float = 60) -> dict[str, Any]:
    end = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < end:
        record = await asyncio.to_thread(record_of, server, call_id)
        if record["end"] is not None and (record["recording"]["available"] or record["recording"]["declined"]):
            return record
        await asyncio.sleep(0.1)
    raise AssertionError("the call's record was not closed")


def files_of(server: Any, call_id: str) -> list[Path]:
    stem = "".join(c if c.isalnum() or c in "._-" else "_" for c in call_id)
    return list((server.workdir / "recordings").rglob(f"{stem}.wav"))


@pytest.fixture(scope="module")
def recorded(server: Any) -> tuple[str, float]:
    """A recorded call of Jane's: she hears the greeting, asks about her order, hears the answer, hangs up. Its id
    and how long she spoke."""
    question = speech("Where is my order?")

    async def call() -> tuple[str, float]:
        caller = Caller(server.sip_port, JANE)
        try:
            call_id = await caller.dial()
            greeting = (await bot_said(server, call_id, 1))[0]
            assert "This call may be recorded" in greeting
            assert files_of(server, call_id), "recording while the call goes on"
            await caller.say(question)
            await bot_said(server, call_id, 2)
            return call_id, len(question) / 2 / SAMPLE_RATE
        finally:
            await caller.close()

    return asyncio.run(call())


def test_a_recorded_sip_call_holds_both_sides_time_aligned(server: Any, recorded: tuple[str, float]) -> None:
    call_id, said_s = recorded
    record = asyncio.run(closed_record(server, call_id))
    assert record["recording"]["available"] and not record["recording"]["declined"]
    [path] = files_of(server, call_id)
    assert os.stat(path).st_mode & 0o777 == 0o600
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, SAMPLE_RATE)
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
        duration = w.getnframes() / SAMPLE_RATE
    assert record["recording"]["duration_s"] == pytest.approx(duration, abs=0.05)
    assert duration == pytest.approx(record["duration_s"], abs=1.5)  # as long as the call
    left, right = frame_levels(audio[:, 0].tobytes()), frame_levels(audio[:, 1].tobytes())
    caller_frames, bot_frames = np.flatnonzero(left > LOUD), np.flatnonzero(right > LOUD)
    # The caller's words on the left, about as long as they were; the bot's greeting and answer on the right.
    assert 0.6 * said_s <= len(caller_frames) * 0.02 <= said_s + 0.5, len(caller_frames)
    assert len(bot_frames) * 0.02 > 4.0
    assert bot_frames[0] < caller_frames[0]  # the greeting came first
    assert np.mean(right[caller_frames] > LOUD) < 0.2  # while the caller spoke, the right side was quiet
    assert np.mean(left[bot_frames] > LOUD) < 0.2
    # Time-aligned: the caller's speech is where the record says the caller turn started.
    turn = next(t for t in record["turns"] if t["speaker"] == "caller")
    spoke_at = (datetime.fromisoformat(turn["start"]) - datetime.fromisoformat(record["start"])).total_seconds()
    assert caller_frames[0] * 0.02 == pytest.approx(spoke_at, abs=0.8)

    # Playback: the supervisor gets the file, an agent not handed the call gets nothing.
    url = f"{server.url}/api/calls/{urllib.parse.quote(call_id, safe='')}/recording"
    res = httpx.get(url, headers=server.auth, timeout=30)
    assert res.status_code == 200 and res.content == path.read_bytes()
    assert httpx.get(url, headers=login(server.url, "ann"), timeout=30).status_code == 404


def test_the_dashboard_plays_the_recording_and_links_evidence_into_it(server: Any, recorded: tuple[str, float]) -> None:
    from playwright.sync_api import sync_playwright

    call_id, _ = recorded
    record = asyncio.run(closed_record(server, call_id))
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_page()
            page.goto(f"{server.url}/supervisor")
            page.wait_for_selector("#username", timeout=30_000)  # the login form
            page.fill("#username", "sup")
            page.fill("#password", "pw-sup")
            page.click("#submit")
            page.wait_for_url("**/supervisor**", timeout=30_000)
            page.goto(f"{server.url}/supervisor#history/call={urllib.parse.quote(call_id, safe='')}")
            page.wait_for_selector("#recording-audio[src]", state="attached", timeout=60_000)
            assert page.is_visible("#recording-box") and "Recording" in page.inner_text("#recording-note")
            # The browser loads the file through the session cookie and knows its length.
            duration = page.evaluate("""() => new Promise((ok, fail) => {
                const a = document.getElementById("recording-audio");
                a.addEventListener("loadedmetadata", () => ok(a.duration), { once: true });
                a.addEventListener("error", () => fail(String(a.error && a.error.code)), { once: true });
                a.preload = "metadata"; a.load();
            })""")
            assert duration == pytest.approx(record["recording"]["duration_s"], abs=0.1)
            # A scorecard item's evidence links to its time in the recording; the player seeks there.
            page.evaluate("() => { document.getElementById('scorecard').open = true; }")
            link = page.wait_for_selector("#scorecard-items a[href*='/recording#t=']", timeout=30_000)
            assert link is not None
            href = link.get_attribute("href") or ""
            t = float(href.rsplit("#t=", 1)[1])
            link.click()
            page.wait_for_function("(t) => document.getElementById('recording-audio').currentTime >= t - 0.3", arg=t,
                                   timeout=30_000)
            at = page.evaluate("() => document.getElementById('recording-audio').currentTime")
            assert t - 0.3 <= at <= t + 5  # from there (and perhaps playing on)
        finally:
            chromium.close()


def test_gdpr_export_names_the_recording_and_delete_removes_it(server: Any, recorded: tuple[str, float]) -> None:
    call_id, _ = recorded
    [path] = files_of(server, call_id)
    url = f"{server.url}/api/calls/{urllib.parse.quote(call_id, safe='')}/recording"
    cfg = str(server.workdir / "voicebot.yaml")
    exported = subprocess.run([sys.executable, "-m", "voicebot", "gdpr", "export", "--customer", "1", "--config", cfg],
                              capture_output=True, text=True, timeout=120, cwd=server.workdir)
    assert exported.returncode == 0, exported.stderr
    mine = [c for c in json.loads(exported.stdout)["calls"] if c["id"] == call_id]
    assert mine and mine[0]["recording"]["path"] == str(path)
    erased = subprocess.run([sys.executable, "-m", "voicebot", "gdpr", "delete", "--customer", "1", "--yes",
                             "--config", cfg], capture_output=True, text=True, timeout=120, cwd=server.workdir)
    assert erased.returncode == 0, erased.stderr
    assert "1 recording file(s) deleted" in erased.stdout
    assert not path.exists() and files_of(server, call_id) == []
    assert httpx.get(url, headers=server.auth, timeout=30).status_code == 404


def test_a_browser_call_is_recorded_the_same_way(server: Any, tmp_path: Path) -> None:
    from audio.speech import write_wav
    from voicebot.client.webrtc import place_call

    samples, _ = espeak_ng("Where is my order?", rate=150, sample_rate=SAMPLE_RATE)
    wav = write_wav(tmp_path / "question.wav", samples, SAMPLE_RATE)
    result = asyncio.run(place_call(server.url, wav, greeting_timeout_s=90, max_wait_s=90, headers=server.auth))
    record = asyncio.run(closed_record(server, result.call_id))
    assert record["channel"] == "webrtc" and record["recording"]["available"]
    assert "This call may be recorded" in next(t["text"] for t in record["turns"] if t["speaker"] == "bot")
    [path] = files_of(server, result.call_id)
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 2
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2)
    left, right = frame_levels(audio[:, 0].tobytes()), frame_levels(audio[:, 1].tobytes())
    caller_frames, bot_frames = np.flatnonzero(left > LOUD), np.flatnonzero(right > LOUD)
    said_s = len(samples) / SAMPLE_RATE
    assert 0.6 * said_s <= len(caller_frames) * 0.02 <= said_s + 0.5, len(caller_frames)
    assert len(bot_frames) * 0.02 > 4.0 and bot_frames[0] < caller_frames[0]
    assert np.mean(right[caller_frames] > LOUD) < 0.2 and np.mean(left[bot_frames] > LOUD) < 0.2


@pytest.mark.parametrize("how", ["words", "key"])
def test_a_declined_recording_is_deleted_and_never_resumed(server: Any, how: str) -> None:
    async def call() -> str:
        caller = Caller(server.sip_port, "5550188")
        try:
            call_id = await caller.dial()
            await bot_said(server, call_id, 1)
            assert files_of(server, call_id), "recording until the decline"
            if how == "words":
                await caller.say(speech("No recording, please."))
            else:
                caller.leg.send_dtmf("9")
            confirmation = (await bot_said(server, call_id, 2))[1]
            assert confirmation.startswith("Understood, this call is not recorded.")
            assert files_of(server, call_id) == []  # deleted before the confirmation was said
            # The call goes on (the bot asked its question again) and nothing is recorded any more.
            await caller.say(speech("Where is my order?"))
            await bot_said(server, call_id, 3)
            assert files_of(server, call_id) == []
            return call_id
        finally:
            await caller.close()

    call_id = asyncio.run(call())
    record = asyncio.run(closed_record(server, call_id))
    assert record["recording"] == {"available": False, "duration_s": None, "declined": True, "interrupted": False, "start": None}
    assert files_of(server, call_id) == []
    url = f"{server.url}/api/calls/{urllib.parse.quote(call_id, safe='')}/recording"
    assert httpx.get(url, headers=server.auth, timeout=30).status_code == 404
