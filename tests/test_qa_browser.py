"""The scorecard in the supervisor dashboard, in a real browser (Debian's Chromium, driven by Playwright): history
filtered by a scorecard item, the call's scorecard with its failed checks, an evidence link that jumps to the turn,
a review note with tags saved and found again by tag, the export links carrying the search's dates. The app runs
in-process without models; the calls are recorded through the call store with the scorer on.

Writes the screenshot ``scorecard.png`` to ``$VOICEBOT_SCREENSHOTS`` (default ``build/screenshots/``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from app_helpers import model_less_app
from auth_helpers import add_user
from browser_helpers import launch_chromium
from net_helpers import serve_app
from test_admin_browser import log_in, screenshots

from voicebot.config import Settings
from voicebot.qa.scorecard import Scorer
from voicebot.storage import CallStore

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def faulty_call(store: CallStore, call_id: str, start: datetime) -> None:
    """A call whose bot never said it is a bot and cancelled without confirmation (as a faulty flow would)."""
    store.open_call(call_id, "sip", "+15550001111")
    store.add_turn(call_id, "bot", "Hi, how can I help?", start, end=start + timedelta(seconds=1),
                   extra={"kind": "greeting", "trace": {"steps": [], "verified": False}})
    store.add_turn(call_id, "caller", "cancel my plan", start + timedelta(seconds=2), end=start + timedelta(seconds=3))
    store.add_turn(call_id, "bot", "Done, it is cancelled.", start + timedelta(seconds=3.5),
                   end=start + timedelta(seconds=5),
                   extra={"kind": "reply", "trace": {"steps": ["action cancel_subscription -> ok"], "verified": True}})
    store.close_call(call_id, "resolved", "caller_hangup")


def good_call(store: CallStore, call_id: str, start: datetime) -> None:
    store.open_call(call_id, "sip", "+15550002222")
    store.add_turn(call_id, "bot", "Hello, you're speaking with the automated assistant.", start,
                   end=start + timedelta(seconds=2), extra={"kind": "greeting", "trace": {"steps": []}})
    store.add_turn(call_id, "caller", "thanks, bye", start + timedelta(seconds=3), end=start + timedelta(seconds=4))
    store.close_call(call_id, "resolved", "caller_hangup")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("qa-browser")
    url = f"sqlite:///{tmp / 'voicebot.db'}"
    settings = Settings(database={"url": url}, privacy={"purge_daily": False})  # type: ignore[arg-type]
    parts = model_less_app(url, settings, scorer=Scorer())
    store = parts.store
    assert store is not None
    now = datetime.now(UTC)
    faulty_call(store, "c-faulty", now - timedelta(minutes=20))
    good_call(store, "c-good", now - timedelta(minutes=10))
    assert store.flush(timeout=10)
    add_user(parts.engine, "sue", "supervisor")
    with serve_app(parts.create()) as served:
        yield served
    parts.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_chromium() as chromium:
        yield chromium


def result_ids(page: Any) -> list[str]:
    return sorted(page.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => r.dataset.callId)"))


def test_a_supervisor_finds_a_failed_check_reads_its_evidence_and_notes_it(base_url: str, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    log_in(page, base_url, "sue")
    page.goto(f"{base_url}/supervisor#history")
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 2")
    page.select_option("select[name=qa]", "confirmed_before_changes=fail")
    page.fill("input[name=since]", (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%d"))
    page.click("#search button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 1")
    assert result_ids(page) == ["c-faulty"]
    assert page.get_attribute("#export-csv", "href").startswith("/api/calls/export?format=csv&from=")

    page.click("#results tbody tr")
    page.wait_for_selector("#scorecard:not([hidden])")
    assert page.text_content("#scorecard-title") == "Scorecard: 2 check(s) failed"
    rows = page.eval_on_selector_all("#scorecard-items tbody tr", "rows => rows.map(r => r.innerText)")
    rows = [r.lower() for r in rows]
    assert any(r.startswith("ai disclosed\tfail") for r in rows)
    assert any(r.startswith("confirmed before changes\tfail") for r in rows)
    assert any(r.startswith("verified before account actions\tpass") for r in rows)
    page.click("#scorecard-items button:has-text('turn 3')")
    page.wait_for_selector("#transcript li.flash")
    assert "cancelled" in page.text_content("#transcript li.flash")

    page.fill("#note-form textarea[name=note]", "Flow must confirm before cancelling.")
    page.fill("#note-form input[name=tags]", "coaching, flow-bug")
    page.click("#note-form button[type=submit]")
    page.wait_for_function("() => document.getElementById('note-msg').textContent === 'saved'")
    assert "Flow must confirm before cancelling." in page.text_content("#notes")
    page.screenshot(path=str(screenshots() / "scorecard.png"), full_page=False)

    page.click("#detail-close")
    page.select_option("select[name=qa]", "")
    page.fill("input[name=tag]", "flow-bug")
    page.click("#search button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#results tbody tr').length === 1")
    assert result_ids(page) == ["c-faulty"]
    page.close()


def test_the_analytics_tab_draws_the_trends_and_the_wallboard_shows_only_tiles(base_url: str, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    log_in(page, base_url, "sue")
    page.goto(f"{base_url}/supervisor#analytics")
    page.wait_for_selector("#view-analytics:not([hidden])")
    page.wait_for_function("() => document.getElementById('analytics-note').textContent.includes('calls')")
    assert page.text_content("#analytics-note").startswith("2 calls, 100 % contained")
    assert page.get_attribute("#an-calls svg", "aria-label").startswith("Calls per day")
    assert "Containment rate per day" in page.get_attribute("#an-containment svg", "aria-label")
    page.screenshot(path=str(screenshots() / "analytics.png"), full_page=True)
    page.select_option("select[name=bucket]", "hour")
    page.wait_for_function("() => (document.querySelector('#an-calls svg')?.getAttribute('aria-label') || '')"
                           ".startsWith('Calls per hour')")
    page.goto(f"{base_url}/supervisor#wallboard")
    page.wait_for_selector("#view-live:not([hidden])")
    assert page.is_visible("#tiles") and page.is_visible("#queues")
    assert not page.is_visible("#calls") and not page.is_visible("#alerts") and not page.is_visible(".tabs")
    page.screenshot(path=str(screenshots() / "wallboard.png"), full_page=False)
    page.close()
