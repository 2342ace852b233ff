"""A real browser calls the bot: headless Chromium (Debian) with a WAV file as its microphone, driven by
Playwright; the call record shows what the fake microphone said, and the page shows the live transcript."""

from __future__ import annotations

import json
import shutil
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from auth_helpers import add_user, login
from browser_helpers import with_microphone
from call_models import CALL_FLOW_MODELS

from audio.speech import piper_tts, write_wav
from voicebot.client.local_server import ServerProcess

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium")
GREETING = "Hello, you're speaking with the automated assistant of Acme Online Store. How can I help?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("browser-server")
    with ServerProcess(work, {"call": {"greeting": GREETING, "silence_prompt_s": 30.0}, "models": CALL_FLOW_MODELS}) as srv:
        add_user(srv.config["database"]["url"], "sup", "supervisor")
        srv.auth = login(srv.url, "sup")  # type: ignore[attr-defined]  # the records need a login
        yield srv


def record_of(server: ServerProcess, call_id: str) -> dict:
    url = f"{server.url}/api/calls/{urllib.parse.quote(call_id, safe='')}"
    with urllib.request.urlopen(urllib.request.Request(url, headers=server.auth)) as res:  # type: ignore[attr-defined]
        return json.loads(res.read())


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_browser_call_from_the_caller_page(server, tmp_path):
    from playwright.sync_api import sync_playwright

    # The fake microphone starts when the page asks for it: speak after the greeting.
    speech, rate = piper_tts("I forgot my password and I need to reset it.", sample_rate=48000, noise_scale=0.0, noise_w_scale=0.0)
    mic = write_wav(
        tmp_path / "mic.wav",
        np.concatenate([np.zeros(int(7.0 * rate), np.float32), speech, np.zeros(int(10.0 * rate), np.float32)]),
        rate,
    )
    args = with_microphone(mic)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            page = browser.new_page()
            page.goto(f"{server.url}/?raw=1")
            page.click("#call")
            page.wait_for_function("() => document.body.dataset.callId", timeout=30_000)
            call_id = page.evaluate("document.body.dataset.callId")
            # The live transcript shows the caller's words, then the bot's answer to them.
            page.wait_for_selector("#transcript li.caller", timeout=60_000)
            page.wait_for_function("() => document.querySelectorAll('#transcript li.bot').length >= 2", timeout=30_000)
            page_text = page.inner_text("#transcript")
            page.click("#hangup")
            page.wait_for_function(
                "() => document.getElementById('status').textContent.startsWith('Call ended')", timeout=30_000
            )
        finally:
            browser.close()

    assert "password" in page_text.lower()
    record = None
    for _ in range(50):  # the server closes the record a moment after the line drops
        record = record_of(server, call_id)
        if record["end"]:
            break
        time.sleep(0.2)
    assert record is not None and record["end"] is not None
    assert record["channel"] == "webrtc"
    caller = [t for t in record["turns"] if t["speaker"] == "caller"]
    assert caller, record
    assert "password" in caller[0]["text"].lower()
    assert "reset_password" in {i["name"] for i in caller[0]["intents"]}
    assert record["turns"][0]["text"] == GREETING
