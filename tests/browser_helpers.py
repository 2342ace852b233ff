"""Headless Chromium (Debian's) for the browser tests: its flags, a fake microphone, the agent page as a phone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Root in a container needs --no-sandbox; the background-networking flags keep Chromium from reaching for Google's
# hosts, which this machine's closed network refuses many at a time.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
]


def with_microphone(wav: Path) -> list[str]:
    """Flags for a page whose microphone plays ``wav`` once (and that may use it without asking)."""
    return [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop"]


def agent_phone(page: Any, base_url: str, agent: str = "alice", password: str | None = None) -> None:
    """Open the agent page as ``agent`` (through the login form, which it redirects to), set them available and
    connect the page as their phone (auto-answer, raw audio)."""
    target = f"/agent?agent={agent}&autoanswer=1&raw=1"
    page.goto(base_url + target)
    page.wait_for_url("**/login?next=*", timeout=10_000)
    page.fill("#username", agent)
    page.fill("#password", password or f"pw-{agent}")
    page.click("#submit")
    page.wait_for_url("**" + target, timeout=10_000)
    page.wait_for_function(f"() => document.getElementById('agent').value === '{agent}'", timeout=10_000)
    page.click("button[data-state=available]")
    page.wait_for_function("() => document.getElementById('state').textContent.startsWith('available')", timeout=10_000)
    page.click("#usephone")
    page.wait_for_function("() => document.getElementById('phonestatus').textContent === 'phone: connected'",
                           timeout=20_000)


def launch_chromium() -> Any:
    """A context manager: Debian's Chromium, headless, through Playwright (its own browser download fails here)."""
    import contextlib
    import shutil

    from playwright.sync_api import sync_playwright

    @contextlib.contextmanager
    def browser() -> Any:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                               "--disable-component-update"])
            try:
                yield chromium
            finally:
                chromium.close()

    return browser()
