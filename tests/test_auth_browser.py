"""The login form in a real browser (Chromium): the agent page sends an agent without a session to /login and
back, shows only her own agent, signs out; a wrong password is a message on the form; ``?next=`` never leads
off the site. The app runs in-process with the agent queue and no models (uvicorn on a loopback port)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_helpers import model_less_app
from auth_helpers import add_user
from net_helpers import serve_app

from voicebot.config import Settings

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("auth-browser")
    settings = Settings(agents=[{"id": "alice", "name": "Alice", "contact": "webrtc"},  # type: ignore[arg-type]
                                {"id": "bob", "name": "Bob", "contact": "webrtc"}],
                        queues=[{"name": "general"}])
    parts = model_less_app(tmp / "voicebot.db", settings, queues=True)
    add_user(parts.engine, "alice", "agent")
    with serve_app(parts.create()) as url:
        yield url
    parts.close()


def test_agent_logs_in_sees_only_herself_and_signs_out(base_url: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(f"{base_url}/agent?agent=alice")
            page.wait_for_url("**/login?next=*")
            page.fill("#username", "alice")
            page.fill("#password", "wrong")
            page.click("#submit")
            page.wait_for_function("() => document.getElementById('error').textContent.length > 0")
            assert "wrong username or password" in page.inner_text("#error")

            page.fill("#password", "pw-alice")
            page.click("#submit")
            page.wait_for_url(f"{base_url}/agent?agent=alice")
            page.wait_for_function("() => document.getElementById('agent').options.length > 0")
            assert page.eval_on_selector_all("#agent option", "os => os.map(o => o.value)") == ["alice"]
            page.wait_for_function("() => document.getElementById('state').textContent === 'offline'")

            page.click("#signout")
            page.wait_for_url("**/login?next=*")
            page.goto(f"{base_url}/agent")
            page.wait_for_url("**/login?next=*")  # the session really ended

            # A crafted link cannot send her off the site after logging in.
            page.goto(f"{base_url}/login?next=https://evil.example/")
            page.fill("#username", "alice")
            page.fill("#password", "pw-alice")
            page.click("#submit")
            page.wait_for_url(f"{base_url}/agent")
        finally:
            browser.close()
