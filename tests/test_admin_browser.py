"""The Admin tab of the supervisor dashboard in a real browser (Debian's Chromium, driven by Playwright): an admin
adds an agent user, who can then log in; the admin sets a new password (the old one stops working, so does the
agent's session), removes the user, reads the audit log of all that (filtered, paged, opening a call from it) and
the effective configuration as a tree without the database password. A supervisor sees no Admin tab and gets
403 from the admin APIs. No call and no speech: the app runs in-process without models (uvicorn on a loopback port).

Writes the screenshot ``admin.png`` to ``$VOICEBOT_SCREENSHOTS`` (default ``build/screenshots/``).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from app_helpers import model_less_app
from auth_helpers import add_user
from net_helpers import serve_app

from voicebot.config import Settings
from voicebot.users import UserStore

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
DB_SECRET = "s3cret-db-pw"
OLD_CALLS = 60  # more audit rows than one page (50) of the log


def screenshots() -> Path:
    folder = Path(os.environ.get("VOICEBOT_SCREENSHOTS") or Path(__file__).resolve().parents[1] / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("admin-browser")
    # The database URL in the settings only shows in /api/config (the app gets its engine below): it carries a
    # password, which the page must never see.
    settings = Settings(agents=[{"id": "alice", "name": "Alice", "contact": "webrtc"}],  # type: ignore[arg-type]
                        queues=[{"name": "general"}],  # type: ignore[list-item]
                        database={"url": f"postgresql://voicebot:{DB_SECRET}@db.example/voicebot"})  # type: ignore[arg-type]
    parts = model_less_app(tmp / "voicebot.db", settings, queues=True)
    store = parts.store
    assert store is not None
    store.open_call("c-old", "sip", "5550123")
    store.add_turn("c-old", "caller", "where is my parcel", datetime.now(UTC))
    store.close_call("c-old", "resolved", "caller_hung_up")
    add_user(parts.engine, "adm", "admin")
    add_user(parts.engine, "sue", "supervisor")
    users = UserStore(parts.engine)
    for _ in range(OLD_CALLS):
        users.audit("sue", "open_call", "c-old")
    with serve_app(parts.create()) as url:
        yield url
    parts.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def request(base_url: str, method: str, path: str, body: dict[str, Any] | None = None,
            token: str | None = None) -> tuple[int, Any]:
    """(status, JSON body) of one API call."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base_url + path, data=None if body is None else json.dumps(body).encode(),
                                 headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def login_status(base_url: str, name: str, password: str) -> tuple[int, str | None]:
    status, body = request(base_url, "POST", "/api/login", {"username": name, "password": password})
    return status, body.get("token") if status == 200 else None


def log_in(page: Any, base_url: str, name: str) -> None:
    page.goto(f"{base_url}/supervisor")
    page.wait_for_url("**/login?next=*")
    page.fill("#username", name)
    page.fill("#password", "pw-" + name)
    page.click("#submit")
    page.wait_for_url(f"{base_url}/supervisor**")
    page.wait_for_selector("#whoami span")


def user_names(page: Any) -> list[str]:
    return page.eval_on_selector_all("#users tbody tr:not(.pw-row)", "rows => rows.map(r => r.dataset.user)")


def test_admin_manages_users_reads_the_audit_log_and_the_config(base_url: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, base_url, "adm")
    # The tab is there for an admin and reachable from the keyboard.
    page.wait_for_selector("#tab-admin", state="visible")
    page.focus("#tab-admin")
    page.keyboard.press("Enter")
    page.wait_for_selector("#view-admin", state="visible")
    page.wait_for_function("() => document.querySelectorAll('#users tbody tr[data-user]').length >= 2")
    assert user_names(page) == ["adm", "sue"]
    assert "you" in page.inner_text("#users tr[data-user=adm]")
    assert page.is_disabled("#users tr[data-user=adm] button:has-text('Remove')")  # not yourself

    # Add an agent: a mismatch and the API's refusals are said in words next to the form.
    form = "#user-add"
    page.fill(f"{form} [name=username]", "carl")
    page.select_option(f"{form} [name=role]", "agent")
    assert page.is_visible("#agent-id-field")
    page.fill(f"{form} [name=agent_id]", "alice")
    page.fill(f"{form} [name=password]", "first-pw")
    page.fill(f"{form} [name=repeat]", "first-pX")
    page.click(f"{form} button[type=submit]")
    page.wait_for_function("() => document.getElementById('user-add-msg').textContent.includes('differ')")
    page.fill(f"{form} [name=repeat]", "first-pw")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#users tr[data-user=carl]")
    assert "Added carl" in page.inner_text("#user-add-msg")
    carl_row = page.inner_text("#users tr[data-user=carl]")
    assert "agent" in carl_row and "alice" in carl_row and "never" in carl_row
    for name, password, said in (("carl", "pw", "already exists"), ("dora", "", "password is empty")):
        page.fill(f"{form} [name=username]", name)
        page.fill(f"{form} [name=password]", password)
        page.fill(f"{form} [name=repeat]", password)
        page.click(f"{form} button[type=submit]")
        page.wait_for_function(f"() => document.getElementById('user-add-msg').textContent.includes({said!r})")
        assert "form-error" in (page.get_attribute("#user-add-msg", "class") or "")
    page.select_option(f"{form} [name=role]", "supervisor")
    assert not page.is_visible("#agent-id-field")  # only agents speak for an agent id

    # The new user can log in.
    status, carl_token = login_status(base_url, "carl", "first-pw")
    assert status == 200 and carl_token
    assert request(base_url, "GET", "/api/me", token=carl_token)[1]["agent_id"] == "alice"

    # The admin sets a new password: the old one and carl's session stop working, the new one works.
    page.click("#users tr[data-user=carl] button:has-text('Set password')")
    pw_form = "#users tr.pw-row[data-user=carl] form"
    page.wait_for_selector(pw_form)
    assert page.evaluate("document.activeElement.name") == "password"  # the keyboard lands in the form
    page.fill(f"{pw_form} [name=password]", "second-pw")
    page.fill(f"{pw_form} [name=repeat]", "second-pw")
    page.click(f"{pw_form} button[type=submit]")
    page.wait_for_function("() => document.getElementById('users-note').textContent.includes('New password set for carl')")
    assert login_status(base_url, "carl", "first-pw")[0] == 401
    assert request(base_url, "GET", "/api/me", token=carl_token)[0] == 401
    assert login_status(base_url, "carl", "second-pw")[0] == 200
    page.click("#tab-history")  # leave and come back: the list is read again, with carl's last login
    page.click("#tab-admin")
    page.wait_for_function(
        "() => !document.querySelector('#users tr[data-user=carl]').textContent.includes('never')")

    # Remove carl, with a confirmation first.
    page.click("#users tr[data-user=carl] button:has-text('Remove')")
    page.wait_for_selector("#users tr[data-user=carl] button:has-text('Yes, remove carl')")
    page.click("#users tr[data-user=carl] button:has-text('Cancel')")
    assert "carl" in user_names(page)
    page.click("#users tr[data-user=carl] button:has-text('Remove')")
    page.click("#users tr[data-user=carl] button:has-text('Yes, remove carl')")
    page.wait_for_function("() => !document.querySelector('#users tr[data-user=carl]')")
    assert user_names(page) == ["adm", "sue"]
    assert login_status(base_url, "carl", "second-pw")[0] == 401

    # The audit log: newest first, carl's logins and the failed one, the admin's changes.
    page.click("#audit-filter button[type=reset]")
    page.wait_for_function("() => document.querySelector('#audit tbody tr')?.dataset.action === 'login_failed'")
    actions = page.eval_on_selector_all("#audit tbody tr", "rows => rows.map(r => r.dataset.action)")
    assert actions[:5] == ["login_failed", "user_remove", "login", "login_failed", "password_set"], actions[:6]
    assert len(actions) == 50 and page.is_visible("#audit-more")  # one page, more to show
    page.click("#audit-more")
    page.wait_for_function("() => document.querySelectorAll('#audit tbody tr').length > 50")
    assert not page.is_visible("#audit-more")
    page.fill("#audit-filter [name=username]", "carl")
    page.click("#audit-filter button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#audit tbody tr').length === 4")
    carl = page.eval_on_selector_all("#audit tbody tr", "rows => rows.map(r => r.dataset.action)")
    assert carl == ["login_failed", "login", "login_failed", "login"]
    assert page.eval_on_selector_all("#audit tbody tr", "rows => rows.map(r => r.cells[4].textContent)") == [
        "127.0.0.1"] * 4
    page.select_option("#audit-filter [name=action]", "login")
    page.click("#audit-filter button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#audit tbody tr').length === 2")

    # A call id in the log opens that call's record, as the History tab does; Escape gives the focus back.
    page.fill("#audit-filter [name=username]", "sue")
    page.select_option("#audit-filter [name=action]", "open_call")
    page.click("#audit-filter button[type=submit]")
    page.wait_for_function("() => document.querySelector('#audit tbody tr')?.dataset.action === 'open_call'")
    page.click("#audit tbody tr:first-child button:has-text('c-old')")
    page.wait_for_selector("#transcript li")
    assert "where is my parcel" in page.inner_text("#transcript")
    assert "5550123" in page.inner_text("#detail-title") and page.is_visible("#view-admin")
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")
    assert page.evaluate("document.activeElement.textContent") == "c-old"

    # The configuration as a tree: sections collapsed, opened on request; no database password anywhere.
    page.wait_for_selector("#config details[data-key=auth]")
    assert not page.is_visible("#config details[data-key=auth] .cfg-leaf")
    page.click("#config details[data-key=auth] > summary")
    session = page.inner_text("#config details[data-key=auth] .cfg-leaf:has-text('session_hours')")
    assert "12" in session
    page.click("#config-expand")
    tree = page.inner_text("#config")
    assert "alice" in tree and "general" in tree and "voicebot:***@db.example" in tree and DB_SECRET not in tree
    page.click("#config-collapse")
    page.click("#config details[data-key=auth] > summary")
    page.click("#config details[data-key=database] > summary")
    page.click("#audit-filter button[type=reset]")  # the picture shows the whole log, newest first
    # ... where the admin's own opening of the call is the newest entry.
    page.wait_for_function("() => document.querySelector('#audit tbody tr')?.cells[1].textContent === 'adm'")
    assert page.get_attribute("#audit tbody tr", "data-action") == "open_call"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshots() / "admin.png"), full_page=True)
    assert errors == []
    context.close()


def test_a_supervisor_has_no_admin_tab_and_gets_403(base_url: str, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    log_in(page, base_url, "sue")
    page.wait_for_selector("#tab-history", state="visible")
    assert page.is_hidden("#tab-admin")
    page.goto(f"{base_url}/supervisor#admin")  # typed by hand: the live view, not the admin one
    page.wait_for_selector("#view-live", state="visible")
    assert page.is_hidden("#view-admin")
    context.close()
    token = login_status(base_url, "sue", "pw-sue")[1]
    for method, path, body in (("GET", "/api/users", None), ("GET", "/api/audit", None), ("GET", "/api/config", None),
                               ("POST", "/api/users", {"username": "x", "role": "admin", "password": "x"}),
                               ("DELETE", "/api/users/adm", None),
                               ("POST", "/api/users/adm/password", {"password": "mine"})):
        assert request(base_url, method, path, body, token)[0] == 403, path
    assert login_status(base_url, "adm", "pw-adm")[0] == 200  # the admin's password did not change
