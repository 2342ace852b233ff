"""Screenshots of the agent page in each state and of the supervisor's analytics view, for the docs.

    python benchmarks/screenshots.py [--out docs/images]

Runs the real product: ``voicebot serve`` in a child process (SIP on, the demo customers, its call history
filled with 3,000 generated calls over 30 days by ``benchmarks/analytics_queries.py``'s ``fill`` so the
analytics have trends to draw), our SIP user agent as the caller Jane Doe (the demo's caller ID, PIN 4321 on
the keypad) who asks to cancel her subscription and presses 0 for a person, headless Chromium as the agent's
phone. Writes ``agent-ringing.png``, ``agent-connected.png`` (live transcript, running summary, suggestions,
the next best action run), ``agent-wrap-up.png``, ``agent-ready.png`` and ``analytics.png`` and prints their
sizes as JSON. Takes a few minutes; not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from analytics_queries import fill
from assist_latency import CHROMIUM_ARGS, Ears, free_port, speech_pcm
from sqlalchemy import create_engine

from audio.pcm import FRAME_BYTES
from audio.speech import write_wav
from telephony.config import SipConfig
from telephony.sip.ua import UserAgent
from voicebot.client.local_server import ServerProcess
from voicebot.storage.schema import upgrade
from voicebot.users import UserStore

ROOT = Path(__file__).resolve().parents[1]
SAID = ("I have a question about how long delivery takes.", "And please cancel my subscription today.")


def bot_turns(base_url: str, headers: dict[str, str], call_id: str) -> list[dict[str, Any]]:
    """The bot's turns so far in the call's record (read as the supervisor)."""
    request = urllib.request.Request(f"{base_url}/api/calls/{urllib.parse.quote(call_id, safe='')}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            record = json.loads(response.read())
    except urllib.error.HTTPError:
        return []
    return [t for t in record.get("turns", []) if t.get("speaker") == "bot"]


def bearer(base_url: str, name: str) -> dict[str, str]:
    body = json.dumps({"username": name, "password": "pw-" + name}).encode()
    request = urllib.request.Request(base_url + "/api/login", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return {"Authorization": "Bearer " + json.loads(response.read())["token"]}


def jane_calls(bot_port: int, base_url: str, talk: threading.Event, stop: threading.Event,
               errors: list[BaseException]) -> None:
    """Jane asks to cancel her subscription, types her PIN, presses 0 for a person (each step once the bot
    has asked for it, by the call record); says :data:`SAID` to the agent once ``talk`` is set."""

    async def main() -> None:
        headers = await asyncio.to_thread(bearer, base_url, "sup")
        ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, rtp_port_min=38400,
                                 rtp_port_max=38499))
        await ua.start()

        async def asked(expect: str | None) -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                turns = await asyncio.to_thread(bot_turns, base_url, headers, leg.call_id)
                trace = ((turns[-1].get("extra") or {}).get("trace") or {}) if turns else {}
                if turns and (expect is None or trace.get("expect") == expect):
                    at = datetime.fromisoformat(str(turns[-1]["start"]))
                    await ears.done_speaking((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp())
                    return
                await asyncio.sleep(0.3)
            raise TimeoutError(f"the bot never asked for {expect}")

        try:
            leg = await ua.dial(f"sip:bot@127.0.0.1:{bot_port}", caller="+15551230001")
            ears = Ears()
            leg.add_sink(ears)
            await asked(None)
            pcm = speech_pcm("I want to cancel my subscription.")
            for i in range(0, len(pcm), FRAME_BYTES):
                await leg.write_audio(pcm[i : i + FRAME_BYTES])
            await asked("verify_factor")
            leg.send_dtmf("4321#")
            await asked("confirm")
            leg.send_dtmf("0")
            while leg.state == "answered" and not stop.is_set():
                if talk.is_set():
                    talk.clear()
                    for sentence in SAID:
                        words = speech_pcm(sentence) + bytes(FRAME_BYTES * 75)
                        for i in range(0, len(words), FRAME_BYTES):
                            await leg.write_audio(words[i : i + FRAME_BYTES])
                await asyncio.sleep(0.2)
            if leg.state == "answered":
                await leg.hangup()
        except BaseException as exc:
            errors.append(exc)
        finally:
            await ua.stop()

    asyncio.run(main())


def log_in(page: Any, url: str, target: str, name: str) -> None:
    page.goto(url + target)
    page.wait_for_url("**/login?next=*", timeout=30_000)
    page.fill("#username", name)
    page.fill("#password", "pw-" + name)
    page.click("#submit")
    page.wait_for_url("**" + target, timeout=30_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="screenshots-"))
    (work / "server").mkdir()
    db_url = f"sqlite:///{work / 'server' / 'voicebot.db'}"
    engine = create_engine(db_url)
    upgrade(engine)
    fill(engine, 3000, 30)
    users = UserStore(engine)
    users.add("alice", "agent", "pw-alice", "alice")
    users.add("sup", "supervisor", "pw-sup")
    engine.dispose()
    port = free_port()
    mic = write_wav(work / "mic.wav", np.zeros(60 * 48000, dtype=np.float32), 48000)
    config = {
        "database": {"url": db_url},
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                "rtp_port_min": 38500, "rtp_port_max": 38599},
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": "webrtc"}],
        "queues": [{"name": "general", "agent_timeout": 60, "max_wait": 180, "wrap_up": 300},
                   {"name": "retention", "agent_timeout": 60, "max_wait": 180, "wrap_up": 300}],
    }
    talk, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    shots: list[Path] = []

    def shot(page: Any, name: str) -> None:
        path = out / name
        page.screenshot(path=str(path), full_page=True)
        shots.append(path)

    with ServerProcess(work / "server", config, start_timeout_s=400) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={mic}%noloop"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 900})
            log_in(page, server.url, "/agent?agent=alice&raw=1", "alice")
            page.wait_for_function("() => document.getElementById('agent').value === 'alice'", timeout=30_000)
            page.click("button[data-state=available]")
            page.wait_for_function("() => document.getElementById('state').textContent.startsWith('available')")
            page.click("#usephone")
            page.wait_for_function("() => document.getElementById('phonestatus').textContent === 'phone: connected'",
                                   timeout=60_000)
            caller = threading.Thread(target=jane_calls, args=(port, server.url, talk, stop, errors), daemon=True)
            caller.start()
            page.wait_for_selector("#answer:not([hidden])", timeout=240_000)
            page.wait_for_function("() => document.getElementById('card').textContent.includes('Orders')")
            shot(page, "agent-ringing.png")
            page.click("#answer")
            page.wait_for_function("() => document.getElementById('callstatus').textContent === '(connected)'",
                                   timeout=60_000)
            talk.set()
            page.wait_for_function("() => Number(document.getElementById('running').dataset.turns) >= 2",
                                   timeout=120_000)
            page.wait_for_selector("#nbarun:not([disabled])", timeout=30_000)
            page.click("#nbarun")
            page.click("#nbayes")
            page.wait_for_function("() => document.getElementById('nbaresult').textContent !== ''", timeout=30_000)
            page.wait_for_function("() => document.getElementById('live').textContent.includes('you: ')",
                                   timeout=30_000)
            shot(page, "agent-connected.png")
            page.click("#hangup")
            page.wait_for_function("() => document.getElementById('wrapsummary').value !== ''", timeout=60_000)
            shot(page, "agent-wrap-up.png")
            page.click("#savewrap")
            page.wait_for_function("() => document.getElementById('wrapstatus').textContent === 'saved'")
            page.click("#ready")
            page.wait_for_function("() => document.getElementById('state').textContent.startsWith('available')")
            page.wait_for_selector("#ready[hidden]", state="attached")
            shot(page, "agent-ready.png")

            sup = browser.new_page(viewport={"width": 1280, "height": 900})
            log_in(sup, server.url, "/supervisor", "sup")
            sup.goto(server.url + "/supervisor#analytics")
            sup.wait_for_selector("#view-analytics:not([hidden])", timeout=30_000)
            sup.wait_for_function("() => document.getElementById('analytics-note').textContent.includes('calls')",
                                  timeout=60_000)
            shot(sup, "analytics.png")
        finally:
            stop.set()
            browser.close()
    if errors:
        raise SystemExit(f"the caller failed: {errors[0]!r}")
    print(json.dumps({p.name: p.stat().st_size for p in shots}, indent=2))


if __name__ == "__main__":
    main()
