"""The supervisor dashboard in a real browser (Debian's Chromium, driven by Playwright) against `voicebot serve`:
a supervisor logs in through the login page, watches a real WebRTC call (speech synthesised now by Piper) appear
in the live table, opens it and sees its transcript arrive with intents, finds it again in the history with
the plots, and logs out. An agent may open only the calls handed to them; without a login there is no page, no
API and no websocket.

Screenshots of the dashboard during the call go to ``$VOICEBOT_SCREENSHOTS`` (default ``build/screenshots/``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from auth_helpers import add_user
from browser_helpers import CHROMIUM_ARGS
from call_models import CALL_FLOW_MODELS
from sqlalchemy import create_engine

from audio.speech import piper_tts, write_wav
from telephony.queue.live import TransferResult
from voicebot.client.local_server import ServerProcess
from voicebot.client.webrtc import place_call
from voicebot.server.caller_token import sign
from voicebot.transfer import TransferStore

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)"),
]

CHROMIUM = shutil.which("chromium")
GREETING = "Hello, this is Acme Online Store. How can I help?"
SENTENCE = "Hi, I want to check the status of my order and I also need to change my delivery address."
CALLER = "5550142"
HUMAN = "I want to speak to a person, please."
CALLER_SECRET = b"the company site's secret"
WAITER = "5550199"  # asks for a person and waits in the queue (no agent is logged in)
ARGS = CHROMIUM_ARGS


def screenshots() -> Path:
    folder = Path(os.environ.get("VOICEBOT_SCREENSHOTS") or Path(__file__).resolve().parents[1] / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("supervisor-server")
    config = {
        "call": {"greeting": GREETING, "silence_prompt_s": 30.0},
        # Two agents and a queue: the board has something to show, and calls can belong to an agent.
        "agents": [{"id": "alice", "name": "Alice Smith", "contact": "webrtc"},
                   {"id": "bob", "name": "Bob Jones", "contact": "webrtc"}],
        "queues": [{"name": "general"}],
        "supervisor": {"alert_wait_s": 4},
        "webrtc": {"caller_token_secret_env": "VOICEBOT_TEST_CALLER_SECRET"},  # browser callers with a number
        # Not the defaults: the dashboard must take its frustration levels from the server.
        "prosody": {"annoyed": 0.45, "frustrated": 0.75},
        "models": CALL_FLOW_MODELS,
    }
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VOICEBOT_TEST_CALLER_SECRET", CALLER_SECRET.decode())  # the server process inherits it
        with ServerProcess(work, config) as srv:
            db = srv.config["database"]["url"]
            add_user(db, "sue", "supervisor")
            add_user(db, "alice", "agent")
            add_user(db, "bob", "agent")
            yield srv


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as res:
            return res.status
    except urllib.error.HTTPError as exc:
        return exc.code


def log_in(page: Any, name: str, lands_on: str) -> None:
    """Fill in the login form the way a person does; wait until the browser lands on ``lands_on`` (a path)."""
    page.fill("#username", name)
    page.fill("#password", "pw-" + name)
    page.click("#submit")
    try:
        page.wait_for_url(f"**{lands_on}**", timeout=30_000)
    except Exception:
        raise AssertionError(f"login of {name} stayed at {page.url}: {page.inner_text('body')[:300]!r}") from None


def test_no_login_no_page_no_transcript(server, browser) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    page = browser.new_page()
    try:
        page.goto(f"{server.url}/supervisor")
        # Redirected to the login form, which comes back here afterwards; nothing of the dashboard is shown.
        assert urllib.parse.urlparse(page.url).path == "/login"
        assert urllib.parse.parse_qs(urllib.parse.urlparse(page.url).query)["next"] == ["/supervisor"]
        assert page.query_selector("#transcript") is None
    finally:
        page.close()
    for path in ("/api/live", "/api/calls", "/api/stats", "/api/live/some-call", "/api/calls/some-call"):
        assert http_status(server.url + path) == 401, path
    ws_url = server.url.replace("http://", "ws://") + "/ws/events"
    with connect(ws_url, open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_supervisor_watches_a_live_call_then_finds_it_in_history(server, browser, tmp_path) -> None:
    shots = screenshots()
    wavs = {}
    for name, text in (("caller", SENTENCE), ("waiter", HUMAN)):
        speech, rate = piper_tts(text, sample_rate=16000, noise_scale=0.0, noise_w_scale=0.0)
        pad = np.zeros(int(0.3 * rate), np.float32)
        wavs[name] = write_wav(tmp_path / f"{name}.wav", np.concatenate([pad, speech, pad]), rate)

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{server.url}/supervisor")
    log_in(page, "sue", "/supervisor")
    page.wait_for_selector("body[data-conn=live]", timeout=15_000)
    assert "sue" in page.inner_text("#whoami") and "supervisor" in page.inner_text("#whoami")
    # The queue board shows the configured agents (offline until they log in on the agent page).
    page.wait_for_selector("#agents .agent-chip", timeout=10_000)
    assert "Alice Smith" in page.inner_text("#agents")

    # Two callers ring in over WebRTC while the dashboard is open: one talks to the bot (and stays a while after
    # its answer), the other asks for a person and waits in the queue until it hangs up.
    # The waiter stays on the line for 40 s whatever it hears (a pause before the queue's hold music, longer under
    # load, must not make it hang up before the dashboard looks for it).
    calls = [(wavs["caller"], CALLER, 8.0, 40.0), (wavs["waiter"], WAITER, 40.0, 40.0)]
    # Their numbers come signed, as the company's site would give them (an unsigned number would be ignored).
    threads = [threading.Thread(target=lambda a=a: asyncio.run(place_call(server.url, a[0], tail_s=a[2],
                                                                           caller_token=sign(a[1], CALLER_SECRET),
                                                                           max_wait_s=a[3])), daemon=True)
               for a in calls]
    for thread in threads:
        thread.start()
    try:
        row = page.wait_for_selector(f"#calls tbody tr[data-call-id]:has-text('{CALLER}')", timeout=30_000)
        call_id = row.get_attribute("data-call-id")
        assert call_id
        assert "WebRTC" in row.inner_text()
        # Open it from the keyboard while the bot is still greeting: the caller's turn arrives live, its words
        # fading in one by one, labelled, with the intents the bot understood.
        row.focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#detail:not([hidden]) #transcript li.turn.caller", timeout=60_000)
        words = page.eval_on_selector("#transcript li.turn.caller .turn-text", "p => p.querySelectorAll('.w').length")
        assert words >= 10, words
        # Listen in: the supervisor hears the bot answering (a WebRTC connection from LISTEN's endpoint).
        page.click("#listen")
        page.wait_for_function("() => document.querySelectorAll('#transcript li.turn.bot').length >= 2", timeout=30_000)
        caller_turn = page.inner_text("#transcript li.turn.caller")
        assert "order" in caller_turn.lower()
        assert "order_status" in caller_turn and "change_address" in caller_turn
        speakers = page.eval_on_selector_all("#transcript li.turn .who", "els => els.map(e => e.textContent)")
        assert speakers[:3] == ["Bot", "Caller", "Bot"], page.eval_on_selector_all(
            "#transcript li.turn", "els => els.map(e => [e._turn.speaker, e._turn.seq, e._turn.id, e._turn.start])")
        # The bot's reply explains itself: its decision trace opens under it.
        page.click("#transcript li.turn.bot:last-child button.why")
        assert "NLU scores" in page.inner_text("#transcript li.turn.bot:last-child .trace")
        page.wait_for_function("() => document.getElementById('listen-status').textContent === 'listening'",
                               timeout=20_000)
        page.wait_for_function("() => +(document.getElementById('listen-box').dataset.loud || 0) >= 5", timeout=20_000)
        page.screenshot(path=str(shots / "supervisor-call.png"))
        page.click("#listen-stop")
        assert page.inner_text("#listen-status") == ""

        # Escape closes the call; the live table shows what the caller asked and the bot's reply latency.
        page.keyboard.press("Escape")
        page.wait_for_selector("#detail", state="hidden")
        page.wait_for_function(
            "id => [...document.querySelectorAll('#calls tbody tr')].some(r => r.dataset.callId === id"
            " && r.textContent.includes('order_status') && / ms|\\d s/.test(r.lastElementChild.textContent))",
            arg=call_id, timeout=30_000)
        # The other caller is queued: its row says so, the queue board lists it, a long-wait alert arrives.
        page.wait_for_selector(f"#calls tbody tr[data-state=queued]:has-text('{WAITER}')", timeout=30_000)
        page.wait_for_selector(f"#queues .waiting li:has-text('{WAITER}')", timeout=10_000)
        page.wait_for_selector("#alerts .alert-item.wait", timeout=20_000)
        page.screenshot(path=str(shots / "supervisor-live.png"))
        # The alert opens that call, with the hand-off packet the agent will see.
        page.click("#alerts .alert-item.wait")
        page.wait_for_selector("#handoff:not([hidden])", timeout=10_000)
        assert "person" in page.inner_text("#handoff-body").lower()
        assert "queued" in page.inner_text("#detail-badges")
        page.screenshot(path=str(shots / "supervisor-handoff.png"))
    except BaseException:
        for thread in threads:
            thread.join(timeout=100)
        raise
    caller_thread, waiter_thread = threads
    caller_thread.join(timeout=100)
    assert not caller_thread.is_alive(), server.log()

    # The call ended: the row says so (the call.ended event; an ended row stays 10 s, the waiter is still queued).
    page.wait_for_selector(f"#calls tbody tr[data-call-id='{call_id}'][data-state=ended]", timeout=30_000)
    waiter_thread.join(timeout=100)
    assert not waiter_thread.is_alive(), server.log()

    # History: search the caller's number; the plots count this call (a bar in its hour, its outcome in the
    # donut, its reply in the latency histogram); open its full record.
    page.click("#tab-history")
    page.fill("#search input[name=number]", CALLER)
    page.click("#search button[type=submit]")
    # Only this caller's call is listed (a locator, found again when the results are redrawn).
    result = page.locator(f"#results tbody tr[data-call-id='{call_id}']")
    result.wait_for(timeout=15_000)
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 1", timeout=15_000)
    assert "order_status" in result.inner_text()
    for chart in ("chart-hours", "chart-latency"):
        page.wait_for_function(
            "id => [...document.querySelectorAll(`#${id} svg rect.bar`)].some(r => +r.getAttribute('height') > 0)",
            arg=chart, timeout=15_000)
    page.wait_for_selector("#chart-outcomes svg path, #chart-outcomes svg circle", timeout=15_000)
    # The frustration levels are the server's (prosody in its config): in the plot and in the search filter.
    page.wait_for_function("() => document.querySelectorAll('#chart-frustration svg line.threshold').length === 2",
                           timeout=15_000)
    assert page.eval_on_selector_all("#search select[name=min_frustration] option",
                                     "os => os.map(o => o.value)") == ["", "0.45", "0.75"]
    page.screenshot(path=str(shots / "supervisor-history.png"), full_page=True)
    result.click()
    page.wait_for_selector("#detail:not([hidden]) #transcript li.turn.caller", timeout=15_000)
    record_text = page.inner_text("#transcript").lower()
    assert "order" in record_text and "address" in record_text
    page.screenshot(path=str(shots / "supervisor-record.png"))

    # Log out: back to the login form, and the dashboard is closed to this browser again.
    page.click("#logout")
    page.wait_for_url("**/login**", timeout=10_000)
    # Back to the dashboard: the server redirects, or (a shell from the browser's cache) the page itself does
    # when its first API call is refused; either way no call is shown.
    page.goto(f"{server.url}/supervisor")
    page.wait_for_url("**/login**", timeout=10_000)
    assert page.query_selector("#transcript") is None
    context.close()
    assert not errors, errors

    # An agent sees only the calls handed to them: record that alice took this one, then bob may not open it.
    engine = create_engine(server.config["database"]["url"])
    TransferStore(engine).add(TransferResult(call_id=call_id, outcome="answered", queue="general", agent_id="alice"),
                              correct_call=False)
    engine.dispose()
    quoted = urllib.parse.quote(call_id, safe="")
    for name, allowed in (("alice", True), ("bob", False)):
        ctx = browser.new_context()
        page = ctx.new_page()
        page.goto(f"{server.url}/login")
        log_in(page, name, "/agent")  # agents land on their own page
        record = page.request.get(f"{server.url}/api/calls/{quoted}")
        found = page.request.get(f"{server.url}/api/calls?number={CALLER}")
        dashboard = page.goto(f"{server.url}/supervisor")
        assert dashboard is not None and dashboard.status == 403  # the dashboard is for supervisors
        if allowed:
            assert record.status == 200 and any(t["speaker"] == "caller" for t in record.json()["turns"])
            assert [r["id"] for r in found.json()] == [call_id]
        else:
            assert record.status == 404 and "order" not in record.text()  # not even whether it exists
            assert found.json() == []
        ctx.close()
