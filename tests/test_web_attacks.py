"""Reproductions of the penetration test's HTTP/WebSocket findings (9, 10, 11, 12, 15), each against a real server
on loopback: the app in-process on uvicorn (``serve_app``) or ``voicebot serve`` in a child process where uvicorn's
own options (forwarded headers, access log) are what is tested. Each test failed on the code before the fix."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from app_helpers import model_less_app
from auth_helpers import add_user, cookie
from net_helpers import free_port, serve_app
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.typing import Origin, Subprotocol

from voicebot.client.local_server import ServerProcess
from voicebot.config import Settings
from voicebot.server.app import create_app
from voicebot.storage import CallStore

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp: Path = tmp_path_factory.mktemp("web-attacks")
    settings = Settings(agents=[{"id": "alice", "name": "Alice", "contact": "webrtc"}],  # type: ignore[arg-type]
                        queues=[{"name": "general"}])
    parts = model_less_app(tmp / "voicebot.db", settings, queues=True)
    for name, role in (("admin", "admin"), ("sup", "supervisor"), ("alice", "agent"), ("victim", "admin")):
        add_user(parts.engine, name, role)
    with serve_app(parts.create()) as url:
        yield url
    parts.close()


def _other_origin(url: str) -> str:
    """A page on another port of the same host: same site (the SameSite cookie goes along), other origin."""
    return f"http://127.0.0.1:{free_port()}"


# 9. CSRF and cross-site websocket hijacking


def test_cookie_post_from_another_origin_is_refused(app_url: str) -> None:
    session = cookie(app_url, "admin", "pw-admin")
    new_user = {"username": "csrf-made", "role": "admin", "password": "pw-csrf-made"}
    res = httpx.post(f"{app_url}/api/users", json=new_user, cookies={"voicebot_session": session},
                     headers={"Origin": _other_origin(app_url)})
    assert res.status_code == 403, res.text
    assert "cross-origin request refused" in res.json()["detail"]
    users = httpx.get(f"{app_url}/api/users", cookies={"voicebot_session": session}).json()
    assert "csrf-made" not in [u["username"] for u in users["users"]]

    # The same request from the server's own page goes through.
    res = httpx.post(f"{app_url}/api/users", json={**new_user, "username": "same-origin-made"},
                     cookies={"voicebot_session": session}, headers={"Origin": app_url})
    assert res.status_code == 201, res.text


def test_form_post_without_json_content_type_is_refused(app_url: str) -> None:
    """An HTML form (text/plain, no preflight) of another site must not reach the JSON API."""
    session = cookie(app_url, "admin", "pw-admin")
    body = '{"username": "form-made", "role": "admin", "password": "pw-form-made"}'
    res = httpx.post(f"{app_url}/api/users", content=body, cookies={"voicebot_session": session},
                     headers={"Content-Type": "text/plain"})
    assert res.status_code == 415, res.text
    assert "application/json" in res.json()["detail"]


def test_events_websocket_from_another_origin_is_refused(app_url: str) -> None:
    session = cookie(app_url, "sup", "pw-sup")
    ws_url = app_url.replace("http://", "ws://") + "/ws/events"
    with connect(ws_url, origin=Origin(_other_origin(app_url)),
                 additional_headers={"Cookie": f"voicebot_session={session}"}) as ws, \
            pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    # The dashboard's own origin still gets its events.
    with connect(ws_url, origin=Origin(app_url),
                 additional_headers={"Cookie": f"voicebot_session={session}"}) as ws:
        assert '"hello"' in str(ws.recv(timeout=10))


# 10. body size and JSON nesting


def test_oversized_body_gets_413_before_it_is_read(app_url: str) -> None:
    big = b'{"sdp": "' + b"x" * (2 * 1024 * 1024) + b'", "type": "offer"}'
    res = httpx.post(f"{app_url}/api/offer", content=big, headers={"Content-Type": "application/json"})
    assert res.status_code == 413, res.text
    assert "http.max_body_bytes" in res.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
        for _ in range(40):
            yield b"x" * 65536

    res = httpx.post(f"{app_url}/api/offer", content=chunks(), headers={"Content-Type": "application/json"})
    assert res.status_code == 413, res.text


def test_deeply_nested_json_is_a_400_not_a_traceback(app_url: str) -> None:
    for depth in (100, 100_000):
        res = httpx.post(f"{app_url}/api/offer", content="[" * depth + "]" * depth,
                         headers={"Content-Type": "application/json"})
        assert res.status_code == 400, res.text
        assert "nests deeper than 32 levels" in res.json()["detail"]


# 12. login throttling


def _login(url: str, name: str, password: str, source: str = "127.0.0.1") -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source)) as client:
        return client.post(f"{url}/api/login", json={"username": name, "password": password})


def test_strangers_cannot_lock_a_user_out(app_url: str) -> None:
    # Wrong passwords for "victim" from five other addresses until each is throttled.
    for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"):
        codes = [_login(app_url, "victim", "guess", source).status_code for _ in range(7)]
        assert codes[-1] == 429, codes
    assert _login(app_url, "victim", "pw-victim", "127.0.0.1").status_code == 200


# 15. headers, API description, open redirect, database file mode


def test_security_headers_on_pages_and_api(app_url: str) -> None:
    for path in ("/login", "/api/me", "/static/login.js"):
        headers = httpx.get(f"{app_url}{path}").headers
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY", path
        assert headers["x-content-type-options"] == "nosniff", path


def test_api_description_needs_a_login(app_url: str) -> None:
    assert httpx.get(f"{app_url}/docs").status_code == 404
    assert httpx.get(f"{app_url}/redoc").status_code == 404
    assert httpx.get(f"{app_url}/openapi.json").status_code == 401
    session = cookie(app_url, "sup", "pw-sup")
    res = httpx.get(f"{app_url}/openapi.json", cookies={"voicebot_session": session})
    assert res.status_code == 200 and "/api/login" in res.json()["paths"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_login_next_with_a_tab_stays_on_the_site(app_url: str) -> None:
    from playwright.sync_api import sync_playwright

    evil = f"127.0.0.1:{free_port()}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page()
            page.goto(f"{app_url}/login?next=/%09/{evil}/")
            page.fill("#username", "alice")
            page.fill("#password", "pw-alice")
            page.click("#submit")
            page.wait_for_url(f"{app_url}/agent")
        finally:
            browser.close()


def test_database_file_is_private(tmp_path: Path) -> None:
    from dialogs.db.engine import Database

    path = tmp_path / "fresh.db"
    old = os.umask(0o022)
    try:
        Database(f"sqlite:///{path}").check()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# 11 and 12 through `voicebot serve`: uvicorn's access log and forwarded headers


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work = tmp_path_factory.mktemp("web-attacks-serve")
    server = ServerProcess(work, {"log_level": "INFO"})
    add_user(f"sqlite:///{work / 'voicebot.db'}", "sup", "supervisor")
    with server:
        yield server


def test_token_in_the_url_never_reaches_the_log(served: ServerProcess) -> None:
    session = cookie(served.url, "sup", "pw-sup")
    ws_base = served.url.replace("http://", "ws://") + "/ws/events"
    with connect(f"{ws_base}?token={session}") as ws:
        assert '"hello"' in str(ws.recv(timeout=10))
    httpx.get(f"{served.url}/api/me", params={"token": session})
    log = _wait_for_log(served, "/api/me")
    assert "/ws/events" in log and "token=[hidden]" in log
    assert session not in log
    # The token kept out of the URL altogether: a subprotocol carries it.
    with connect(ws_base, subprotocols=[Subprotocol("voicebot"), Subprotocol(f"voicebot.bearer.{session}")]) as ws:
        assert ws.subprotocol == "voicebot"
        assert '"hello"' in str(ws.recv(timeout=10))
    assert session not in served.log_path.read_text(errors="replace")


def _wait_for_log(server: ServerProcess, needle: str) -> str:
    import time

    deadline = time.monotonic() + 10
    while True:  # uvicorn writes its access line after the response: poll the file, bounded
        text = server.log_path.read_text(errors="replace")
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_forwarded_for_from_loopback_does_not_rotate_the_address(served: ServerProcess) -> None:
    codes = []
    for i in range(7):
        res = httpx.post(f"{served.url}/api/login", json={"username": f"nobody{i}", "password": "guess"},
                         headers={"X-Forwarded-For": f"203.0.113.{i + 1}"})
        codes.append(res.status_code)
    assert codes[:5] == [401] * 5 and codes[-1] == 429, codes


# 10. idle SIP TCP connections


def test_sip_tcp_connections_are_limited_and_silent_ones_closed() -> None:
    import asyncio

    from telephony.sip.transport import Peer, SipTransport

    options = (b"OPTIONS sip:bot@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK1\r\n"
               b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bot@127.0.0.1>\r\nCall-ID: idle-1\r\nCSeq: 1 OPTIONS\r\n"
               b"Content-Length: 0\r\n\r\n")

    async def scenario() -> None:
        received: list[Peer] = []
        second = asyncio.Event()

        def on_message(_data: bytes, peer: Peer) -> None:
            received.append(peer)
            if len(received) == 2:
                second.set()

        transport = SipTransport(on_message, max_incoming_tcp=3,
                                 first_message_timeout_s=1.0)
        host, port = await transport.listen_tcp("127.0.0.1", 0)
        try:
            conns = [await asyncio.open_connection(host, port) for _ in range(3)]
            conns[0][1].write(options)  # one talks: it stays open past the first-message timeout
            extra_reader, _extra_writer = await asyncio.open_connection(host, port)
            assert await asyncio.wait_for(extra_reader.read(), 5) == b""  # the fourth is closed at once
            # The silent ones are closed after first_message_timeout_s; the talking one is not.
            for reader, _writer in conns[1:]:
                assert await asyncio.wait_for(reader.read(), 10) == b""
            assert len(received) == 1
            conns[0][1].write(options)
            await conns[0][1].drain()
            await asyncio.wait_for(second.wait(), 5)  # the second message arrives on the still-open connection
        finally:
            await transport.close()

    asyncio.run(scenario())


# 15. after kill -9: call and contact rows closed at their last activity


def test_rows_left_open_by_a_killed_process_end_at_their_last_activity(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from dialogs.db.engine import Database
    from dialogs.db.models import Contact
    from dialogs.db.repository import close_stale_contacts, open_contact
    from voicebot.storage.models import CallRow
    from voicebot.storage.schema import upgrade as upgrade_schema

    url = f"sqlite:///{tmp_path / 'voicebot.db'}"
    database = Database(url)
    upgrade_schema(database.engine)
    started = datetime.now(UTC) - timedelta(hours=3)  # the process died mid-call three hours ago
    store = CallStore(database.engine)
    store.open_call("killed", "sip", None)
    with database.session() as s:  # opened three hours ago, as the killed process left it
        s.execute(update(CallRow).where(CallRow.id == "killed").values(start=started))
    store.add_turn("killed", "caller", "where is my order", started + timedelta(seconds=5),
                   started + timedelta(seconds=8))
    store.add_turn("killed", "bot", "let me look", started + timedelta(seconds=9))  # cut off while speaking
    with database.session() as s:
        contact_id = open_contact(s, "sip", "+4930123456", started)

    # The next start-up (voicebot.runtime does both):
    assert CallStore(database.engine).close_stale() == 1
    with database.session() as s:
        assert close_stale_contacts(s) == 1
    record = store.get("killed")
    assert record is not None and record["outcome"] == "interrupted"
    assert datetime.fromisoformat(record["end"]) == started + timedelta(seconds=9)  # not the restart's time
    with database.session() as s:
        contact = s.get(Contact, contact_id)
        assert contact is not None and contact.outcome == "interrupted"
        assert contact.ended_at == started.replace(tzinfo=None)


# 10. anonymous browser calls: webrtc.max_calls


def test_browser_offers_beyond_webrtc_max_calls_get_503(tmp_path: Path) -> None:
    import asyncio

    from aiortc import RTCPeerConnection, RTCSessionDescription

    from voicebot.runtime import Runtime

    settings = Settings()
    settings.database.url = f"sqlite:///{tmp_path / 'voicebot.db'}"
    settings.webrtc.max_calls = 1
    runtime = Runtime.load(settings, warm_up=False)

    async def offer_sdp(pc: RTCPeerConnection) -> dict[str, str]:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        return {"sdp": pc.localDescription.sdp, "type": "offer"}

    async def scenario(url: str) -> None:
        first, second = RTCPeerConnection(), RTCPeerConnection()
        try:
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                res = await http.post("/api/offer", json=await offer_sdp(first))
                assert res.status_code == 200, res.text
                await first.setRemoteDescription(RTCSessionDescription(res.json()["sdp"], "answer"))
                res = await http.post("/api/offer", json=await offer_sdp(second))
                assert res.status_code == 503, res.text
                assert "lines for browser callers are busy" in res.json()["detail"]
                assert res.headers["retry-after"] == "30"
        finally:
            await first.close()
            await second.close()

    try:
        with serve_app(create_app(runtime)) as url:
            asyncio.run(scenario(url))
    finally:
        runtime.close()


def test_forwarded_for_is_believed_from_a_configured_proxy(tmp_path: Path) -> None:
    """Behind a reverse proxy listed in http.trusted_proxies, the throttle and the audit see the real client."""
    db = f"sqlite:///{tmp_path / 'voicebot.db'}"
    add_user(db, "adm", "admin")
    with ServerProcess(tmp_path, {"http": {"trusted_proxies": ["127.0.0.1"]}}) as server:
        codes = [httpx.post(f"{server.url}/api/login", json={"username": "adm", "password": "guess"},
                            headers={"X-Forwarded-For": f"198.51.100.{i + 1}"}).status_code for i in range(7)]
        assert codes == [401] * 7  # seven clients, one failure each
        headers = {"Authorization": f"Bearer {cookie(server.url, 'adm', 'pw-adm')}"}
        audit = httpx.get(f"{server.url}/api/audit", params={"action": "login_failed"}, headers=headers).json()
    assert {row["detail"] for row in audit["audit"]} == {f"198.51.100.{i + 1}" for i in range(7)}


def test_sip_tcp_limits_come_from_the_config() -> None:
    from telephony.config import SipConfig
    from telephony.sip.endpoint import Endpoint

    endpoint = Endpoint(SipConfig(tcp_max_connections=7, tcp_first_message_s=2.5), [])
    assert endpoint.transport.max_incoming_tcp == 7
    assert endpoint.transport.first_message_timeout_s == 2.5
