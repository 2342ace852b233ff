"""Browser (WebRTC) callers in the agent queue, end to end through ``voicebot serve`` with real peers.

1. An aiortc caller (``voicebot.client.webrtc``'s player and recorder; espeak-ng speech) asks the bot
   for a human; the queue rings a baresip agent in auto-answer mode (SIP), who hears the whisper and then the
   caller; the caller hears the agent (a 3000 Hz tone, then "Hello, this is Alice from customer care") but
   not the whisper. The call record: outcome ``handoff``, ``agent_id`` alice, the bridged turns of both sides.
2. The caller page in headless Chromium asks for a human (and talks over the bot's hand-off sentence) while no
   agent is logged in and waits in the queue: its keypad's callback key ends the wait with a callback request;
   a second caller closes the page while waiting: the call is ``abandoned`` with its wait time.
3. Both sides WebRTC: the aiortc caller is bridged to the agent page in Chromium (the agent's phone).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from auth_helpers import add_user, login
from browser_helpers import agent_phone, with_microphone
from call_models import CALL_FLOW_MODELS
from net_helpers import free_port, rtp_ports, sip_port
from test_telephony_baresip import transcribe
from test_transfer_live import AGENT_HZ, frames_at, tone

from audio.speech import espeak_ng
from voicebot.client.local_server import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
]

RATE = 48000



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


async def browser_call(base: str, samples: np.ndarray, max_s: float, hang_up_on: float | None = None,
                       on_tone: tuple[float, np.ndarray] | None = None) -> tuple[str, np.ndarray, float]:
    """Call the bot like a browser; after the greeting, play ``samples``; listen until the server ends the
    call, ``max_s`` passed, or (``hang_up_on``) 2 s of that frequency were heard. ``on_tone`` (frequency,
    samples): once half a second of that frequency was heard, say those samples. Returns the call id, what
    the caller heard (48 kHz) and seconds the call lasted."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from voicebot.client.webrtc import FilePlayer, Recorder, http_json

    player, recorder = FilePlayer(samples), Recorder()
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
    answer = await asyncio.to_thread(http_json, "POST", f"{base}/api/offer",
                                    {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    started = time.monotonic()
    try:
        while not recorder.quiet_for(0.8) and time.monotonic() - started < 20:  # the greeting
            await asyncio.sleep(0.05)
        player.play()
        waits = [asyncio.ensure_future(closed.wait()), asyncio.ensure_future(recorder.closed.wait())]
        if hang_up_on is not None:
            waits.append(asyncio.ensure_future(heard_tone(recorder, hang_up_on)))
        if on_tone is not None:
            hz, then_say = on_tone
            tasks.append(asyncio.ensure_future(say_on_tone(recorder, player, hz, then_say)))
        ended = asyncio.ensure_future(asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED))
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


async def heard_tone(recorder: Any, hz: float, frames: int = 100) -> None:
    while frames_at(recorder.audio()[-3 * RATE :], RATE, hz) < frames:
        await asyncio.sleep(0.25)


async def say_on_tone(recorder: Any, player: Any, hz: float, samples: np.ndarray) -> None:
    await heard_tone(recorder, hz, frames=25)
    player.say(samples)


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
    agent_port, port = free_port(), sip_port()
    # The agent's phone: silent while the whisper plays, then 4 s of 3000 Hz, then says hello, then hangs up.
    hello = speech("Hello, this is Alice from customer care.", rate)
    sf.write(str(tmp_path / "agent.wav"),
             np.concatenate([np.zeros(9 * rate, np.int16), tone(AGENT_HZ, 4, rate), np.zeros(rate // 2, np.int16),
                             hello, np.zeros(6 * rate, np.int16)]), rate, subtype="PCM_16")
    agent = baresip_agent(tmp_path / "agent", agent_port, tmp_path / "agent.wav")
    # The caller: asks for a person; once it hears the agent (the tone), says what it is about. (A fixed pause
    # instead raced the queue: on a loaded machine the agent had hung up halfway through "refund".)
    caller = np.concatenate([speech("I want to speak to a human."), np.zeros(40 * RATE, np.int16)])
    about = np.concatenate([speech("Hello, I am calling about my refund."), np.zeros(40 * RATE, np.int16)])
    config = {
        "call": {"greeting": "Hello, how can I help?"},
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(100)},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": f"sip:alice@127.0.0.1:{agent_port}",
                    "logged_in": True}],
        "queues": [{"name": "general", "agent_timeout": 10, "max_wait": 60}],
        "models": CALL_FLOW_MODELS,
    }
    try:
        with ServerProcess(tmp_path / "server", config) as server:
            call_id, heard, lasted = asyncio.run(browser_call(server.url, caller, max_s=60,
                                                                  on_tone=(AGENT_HZ, about)))
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

    # The caller heard the agent, but not the whisper ("Caller not identified. Asked for a person."): before the
    # agent's tone, the bot and the queue; after it, the agent's hello.
    assert frames_at(heard, RATE, AGENT_HZ) > 100, log
    tone_at = [i for i in range(0, len(heard) - 960, 960) if frames_at(heard[i : i + 960], RATE, AGENT_HZ)]
    # The agent's tone starts where 10 frames in a row have it: one frame of speech can peak near 3 kHz too
    # (the burst of the "c" in "colleague" did, and cut the bot's sentence in two).
    start = next(t for t in tone_at if all(t + k * 960 in tone_at for k in range(10)))
    sf.write(str(tmp_path / "before.wav"), heard[:start], RATE, subtype="PCM_16")
    sf.write(str(tmp_path / "after.wav"), heard[tone_at[-1] :], RATE, subtype="PCM_16")
    before, after = transcribe(tmp_path / "before.wav").lower(), transcribe(tmp_path / "after.wav").lower()
    assert "colleague" in before, before
    assert "identified" not in before and "person" not in before, before
    assert "alice" in after or "customer care" in after, after
    # The agent heard the whisper, then the caller.
    agent_heard = transcribe(next((tmp_path / "agent" / "rec").glob("dump-*-dec.wav"))).lower()
    assert "person" in agent_heard or "identified" in agent_heard, agent_heard
    # The caller's sentence reached the agent: tiny.en over G.711 garbles one word or another ("calling an out my
    # refund", "calling amount my reason"), so two of its words are enough (none of them is in the whisper).
    assert sum(word in agent_heard for word in ("hello", "calling", "about", "refund")) >= 2, agent_heard


def on_hold(base: str, call_id: str, headers: dict[str, str], timeout: float = 60) -> None:
    """Return once ``call_id`` waits in a queue (GET /api/queues) and the bot's hand-off sentence has been
    heard (its turn has an end): from then on the queue has the caller's keys."""
    deadline = time.monotonic() + timeout
    quoted = urllib.parse.quote(call_id, safe="")
    while time.monotonic() < deadline:
        if any(w["call_id"] == call_id for q in get(f"{base}/api/queues", headers)["queues"] for w in q["waiting"]):
            bot = [t for t in get(f"{base}/api/calls/{quoted}", headers)["turns"] if t["speaker"] == "bot"]
            if len(bot) >= 2 and bot[-1]["end"]:
                return
        time.sleep(0.2)
    raise AssertionError(f"call {call_id} never waited in a queue")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_caller_page_keypad_reaches_the_queue_and_closing_the_page_abandons(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from audio.speech import write_wav

    # The fake microphone starts when the page asks for it: the request comes after the greeting; then the
    # caller talks over the bot's hand-off sentence (which cuts it: the queue takes the caller at once).
    ask = speech("I want to speak to a human.").astype(np.float32) / 32768
    over = speech("Okay, thank you.").astype(np.float32) / 32768
    mic = write_wav(tmp_path / "mic.wav", np.concatenate([np.zeros(4 * RATE, np.float32), ask,
                                                          np.zeros(int(2.2 * RATE), np.float32), over,
                                                          np.zeros(60 * RATE, np.float32)]), RATE)
    config = {
        "call": {"greeting": "Hello, how can I help?"},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": "webrtc"}],  # logged out: callers wait
        "queues": [{"name": "general", "max_wait": 120, "callback_key": "1"}],
        "models": CALL_FLOW_MODELS,
    }
    args = with_microphone(mic)
    with ServerProcess(tmp_path / "server", config) as server, sync_playwright() as p:
        add_user(server.config["database"]["url"], "sup", "supervisor")
        headers = login(server.url, "sup")
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=args)
        try:
            # 1. A caller waiting in the queue presses the callback key on the page's keypad.
            page = browser.new_page()
            page.goto(f"{server.url}/?raw=1")
            page.click("#call")
            page.wait_for_function("() => document.body.dataset.callId !== undefined", timeout=20_000)
            first = page.evaluate("document.body.dataset.callId")
            on_hold(server.url, first, headers)
            page.click("#keypad button[data-key='1']")
            first_record = closed_record(server.url, first, headers)
            page.wait_for_function("() => document.getElementById('keypad').hidden", timeout=20_000)  # the page knows
            # 2. Another caller waits, then closes the page.
            page = browser.new_page()
            page.goto(f"{server.url}/?raw=1")
            page.click("#call")
            page.wait_for_function("() => document.body.dataset.callId !== undefined", timeout=20_000)
            second = page.evaluate("document.body.dataset.callId")
            on_hold(server.url, second, headers)
            page.close()
            second_record = closed_record(server.url, second, headers)
            callbacks = get(f"{server.url}/api/callbacks", headers)["callbacks"]
        finally:
            browser.close()
        log = server.log()

    assert first_record["outcome"] == "callback", (first_record, log)
    handoff_turn = [t for t in first_record["turns"] if t["speaker"] == "bot"][-1]
    assert handoff_turn["extra"].get("interrupted"), first_record["turns"]  # the caller did talk over it
    assert first_record["transfer"]["outcome"] == "callback"
    assert [c["call_id"] for c in callbacks] == [first]
    assert second_record["outcome"] == "abandoned", (second_record, log)
    assert second_record["transfer"]["outcome"] == "abandoned" and second_record["transfer"]["wait_s"] > 0


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_browser_caller_is_warm_transferred_to_the_agent_page(tmp_path: Path) -> None:
    """Both sides WebRTC: the agent page in Chromium is the agent's phone (its microphone a 3000 Hz tone)."""
    from playwright.sync_api import sync_playwright

    from audio.speech import write_wav

    t = np.arange(90 * RATE) / RATE
    mic = write_wav(tmp_path / "mic.wav", (0.3 * np.sin(2 * np.pi * AGENT_HZ * t)).astype(np.float32), RATE)
    config = {
        "call": {"greeting": "Hello, how can I help?"},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": "webrtc"}],
        "queues": [{"name": "general", "agent_timeout": 15, "max_wait": 60}],
        "models": CALL_FLOW_MODELS,
    }
    args = with_microphone(mic)
    caller = np.concatenate([speech("I want to speak to a human."), np.zeros(40 * RATE, np.int16)])
    with ServerProcess(tmp_path / "server", config) as server, sync_playwright() as p:
        db = server.config["database"]["url"]
        add_user(db, "alice", "agent")
        add_user(db, "sup", "supervisor")
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=args)
        try:
            page = browser.new_page()
            # Without a session the agent page sends her to the login form, and back after it.
            agent_phone(page, server.url)
            with ThreadPoolExecutor(1) as pool:  # Playwright's sync API keeps an event loop in this thread
                call_id, heard, _ = pool.submit(
                    lambda: asyncio.run(browser_call(server.url, caller, max_s=60, hang_up_on=AGENT_HZ))).result()
            record = closed_record(server.url, call_id, login(server.url, "sup"))
            whisper_heard = page.evaluate("window.remoteLoud")
        finally:
            browser.close()
        log = server.log()

    assert frames_at(heard, RATE, AGENT_HZ) >= 100, log  # the caller heard the agent page's microphone
    assert whisper_heard >= 10, f"the page heard {whisper_heard} loud 100 ms windows (the whisper)"
    assert record["outcome"] == "handoff" and record["agent_id"] == "alice", (record, log)
    assert record["transfer"]["outcome"] == "answered" and record["transfer"]["talk_s"] > 0
