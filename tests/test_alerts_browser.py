"""Alerts on the dashboard in a real browser (Debian's Chromium via Playwright): an alert raised by a frustrated
caller shows with the count badge, a supervisor acknowledges and assigns it, a second dashboard opened afterwards
shows the same state (it is stored), and the alert leaves both lists when the call ends. On the agent page: an alert
assigned to the agent shows live, and leaves her list live when it is given to another agent, whose page shows it.
The app runs in-process without models (uvicorn on loopback); the call is written through the call store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from app_helpers import model_less_app
from auth_helpers import add_user
from browser_helpers import launch_chromium
from net_helpers import serve_app
from test_admin_browser import log_in

from voicebot.config import Settings
from voicebot.storage import CallStore
from voicebot.users import UserStore

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, CallStore]]:
    tmp: Path = tmp_path_factory.mktemp("alerts-browser")
    url = f"sqlite:///{tmp / 'voicebot.db'}"
    settings = Settings(database={"url": url}, privacy={"purge_daily": False})  # type: ignore[arg-type]
    parts = model_less_app(url, settings)
    add_user(parts.engine, "sue", "supervisor")
    add_user(parts.engine, "alice", "agent", agent_id="alice")
    add_user(parts.engine, "bob", "agent", agent_id="bob")
    with serve_app(parts.create()) as base:
        yield base, parts.engine, parts.store
    parts.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as chromium:
        yield chromium


def test_a_supervisor_acknowledges_and_assigns_an_alert(served, browser) -> None:
    base, engine, store = served
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, base, "sue")
    page.wait_for_selector("#alerts-empty", state="visible")
    assert page.is_hidden("#alerts-count")

    now = datetime.now(UTC)
    store.open_call("b1", "sip", "+15550133")
    store.add_turn("b1", "caller", "I have called three times now", now, end=now,
                   extra={"signals": {"frustration": 0.9, "frustration_level": "frustrated",
                                      "frustration_trend": "rising", "frustration_explanation": "third call"}})
    page.wait_for_selector("#alerts li .alert-ack")
    assert page.text_content("#alerts-count") == "1"
    assert "third call" in page.text_content("#alerts")

    page.click("#alerts li .alert-ack")
    page.wait_for_selector("#alerts li .acked")
    assert "Acknowledged by sue" in page.text_content("#alerts")
    page.wait_for_selector("#alerts-count", state="hidden")  # nothing left to acknowledge
    page.fill("#alerts li .alert-assignee", "alice")
    page.click("#alerts li .alert-assign button")
    page.wait_for_selector("#alerts li .assigned")
    assert "Assigned to alice" in page.text_content("#alerts")

    # A dashboard opened now reads the same state from the server.
    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(other, base, "sue")
    other.wait_for_selector("#alerts li .assigned")
    assert "Acknowledged by sue" in other.text_content("#alerts")

    actions = [(r["action"], r["call_id"]) for r in UserStore(engine).audit_log(username="sue")]
    assert ("alert_ack", "b1") in actions and ("alert_assign", "b1") in actions

    store.close_call("b1", "completed", "caller_hangup")  # the call ends: its alert is resolved everywhere
    for p in (page, other):
        p.wait_for_selector("#alerts-empty", state="visible")
        p.close()


def test_the_agent_page_shows_the_alerts_assigned_to_the_agent_who_acknowledges_them(served, browser) -> None:
    import httpx
    from auth_helpers import login

    base, engine, store = served
    page, bob_page = agent_page(browser, base, "alice"), agent_page(browser, base, "bob")

    now = datetime.now(UTC)
    store.open_call("b2", "sip", "+15550144")
    store.add_turn("b2", "caller", "This is the fourth time I call", now, end=now,
                   extra={"signals": {"frustration": 0.9, "frustration_level": "frustrated",
                                      "frustration_trend": "rising", "frustration_explanation": "fourth call"}})
    sue, alice = login(base, "sue"), login(base, "alice")
    with httpx.Client(base_url=base, timeout=30) as http:
        mine = []
        for _ in range(100):  # the alert book stores the alert from the event, on its worker thread
            mine = [a for a in http.get("/api/alerts?open=1", headers=sue).json()["alerts"] if a["call_id"] == "b2"]
            if mine:
                break
            page.wait_for_timeout(50)
        [alert] = mine
        # Not hers yet: the agent cannot acknowledge it.
        assert http.post(f"/api/alerts/{alert['id']}/ack", json={}, headers=alice).status_code == 403
        res = http.post(f"/api/alerts/{alert['id']}/assign", json={"user": "alice"}, headers=sue)
        assert res.status_code == 200, res.text

        page.wait_for_selector(f"#alerts li[data-alert='{alert['id']}'] .alert-ack")  # live, without a reload
        assert "fourth call" in page.text_content("#alerts") and "assigned by sue" in page.text_content("#alerts")
        page.click("#alerts li .alert-ack")
        page.wait_for_selector("#alerts li .acked")
        assert "Acknowledged by alice" in page.text_content("#alerts")
        assert http.get("/api/alerts?open=1", headers=sue).json()["alerts"][0]["acked_by"] == "alice"

        # A supervisor gives it to bob: it leaves alice's list live and appears on bob's page.
        res = http.post(f"/api/alerts/{alert['id']}/assign", json={"user": "bob"}, headers=sue)
        assert res.status_code == 200, res.text
        bob_page.wait_for_selector(f"#alerts li[data-alert='{alert['id']}']")
        page.wait_for_selector("#alerts-empty", state="visible")
        assert page.query_selector("#alerts li") is None
    actions = [(r["action"], r["call_id"]) for r in UserStore(engine).audit_log(username="alice")]
    assert ("alert_ack", "b2") in actions

    store.close_call("b2", "completed", "caller_hangup")  # the call ends: its alert leaves the agent's list
    bob_page.wait_for_selector("#alerts-empty", state="visible")
    page.close()
    bob_page.close()


def agent_page(browser: Any, base: str, name: str) -> Any:
    """A new browser context on the agent page, logged in as ``name``, its alert list loaded."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(f"{base}/agent")
    page.wait_for_url("**/login?next=*")
    page.fill("#username", name)
    page.fill("#password", f"pw-{name}")
    page.click("#submit")
    page.wait_for_url(f"{base}/agent**")
    page.wait_for_selector("#alerts-empty", state="visible")
    return page
