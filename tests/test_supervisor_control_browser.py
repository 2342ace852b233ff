"""A supervisor controls agents from the dashboard's board, in a real browser (Debian's Chromium via Playwright):
sets an agent available, then paused, each written to the audit log with who did it (agents cannot open the
dashboard; the API lets them set only their own state).
The app runs in-process without models (uvicorn on loopback) with a real agent queue service."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app_helpers import model_less_app
from auth_helpers import add_user
from browser_helpers import launch_chromium
from net_helpers import serve_app
from test_admin_browser import log_in

from voicebot.config import Settings
from voicebot.users import UserStore

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("control-browser")
    url = f"sqlite:///{tmp / 'voicebot.db'}"
    settings = Settings(agents=[{"id": "alice", "name": "Alice", "contact": "webrtc"}],  # type: ignore[arg-type]
                        queues=[{"name": "general"}], database={"url": url},  # type: ignore[list-item, arg-type]
                        privacy={"purge_daily": False})  # type: ignore[arg-type]
    parts = model_less_app(url, settings, queues=True)
    add_user(parts.engine, "sue", "supervisor")
    add_user(parts.engine, "alice", "agent", agent_id="alice")
    with serve_app(parts.create()) as base:
        yield base, parts.engine
    parts.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as chromium:
        yield chromium


def test_a_supervisor_sets_an_agents_state_from_the_board_and_it_is_audited(served, browser) -> None:
    base, engine = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, base, "sue")
    page.wait_for_selector(".agent-chip[data-agent=alice]")
    assert "Offline" in page.text_content("#agents")
    page.click(".agent-chip[data-agent=alice]")
    page.click(".agent-menu button[data-state=available]")
    page.wait_for_function("() => document.getElementById('agents').textContent.includes('Available (1)')")
    page.click(".agent-chip[data-agent=alice]")
    page.click(".agent-menu button[data-state=paused]")
    page.wait_for_function("() => document.getElementById('agents').textContent.includes('Paused (1)')")
    assert "paused: set by sue" in page.get_attribute(".agent-chip[data-agent=alice]", "title")
    actions = [(r["username"], r["action"], r["detail"]) for r in UserStore(engine).audit_log(username="sue")]
    assert ("sue", "agent_available", "alice") in actions and ("sue", "agent_paused", "alice") in actions
    page.close()
