"""Logins and who may see what: password hashing, session expiry, 401/403 on every data API, agents limited
to their own calls and their own state, throttled failed logins, the audit log, the users API and the pages.

One app on a real SQLite file with the agent queue (no SIP, no models): the routes under test never touch
the bot's models.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from app_helpers import model_less_app
from auth_helpers import add_user, cookie, login
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from telephony.queue.live import TransferResult
from telephony.queue.request import QueueRequest
from voicebot.config import Settings
from voicebot.redaction import Redactor
from voicebot.server.access import LoginThrottle
from voicebot.storage import CallStore
from voicebot.users import UserStore, hash_password, verify_password

AGENTS = [
    {"id": "alice", "name": "Alice", "contact": "sip:alice@127.0.0.1:5999"},
    {"id": "bob", "name": "Bob", "contact": "sip:bob@127.0.0.1:5998"},
]
QUEUES = [{"name": "general"}]
CARD = "4111 1111 1111 1111"  # a test Visa number: passes the Luhn check


@pytest.fixture(scope="module")
def app_parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("auth")
    settings = Settings(agents=AGENTS, queues=QUEUES)  # type: ignore[arg-type]
    parts = model_less_app(tmp / "voicebot.db", settings, redactor=Redactor.from_settings(settings), queues=True)
    engine, store, service = parts.engine, parts.store, parts.service
    assert store is not None and service is not None
    now = datetime.now(UTC)
    for call_id, agent in (("c-alice", "alice"), ("c-bob", "bob"), ("c-bot", None)):
        store.open_call(call_id, "sip", "+15550100")
        store.add_turn(call_id, "caller", "where is my order 45281", now)
        if agent:
            service.records.add(TransferResult(call_id=call_id, outcome="answered", queue="general",
                                               agent_id=agent, wait_s=3.0))
    store.open_call("c-web", "webrtc", None)  # taken by alice, known only from the call record (no hand-off row)
    store.set_agent("c-web", "alice")
    # A row stored before redaction was switched on: the API must still redact it on the way out.
    CallStore(engine, redactor=Redactor.disabled()).add_turn("c-bot", "caller", f"my card is {CARD}", now)
    for name, role in (("adm", "admin"), ("sup", "supervisor"), ("alice", "agent"), ("bob", "agent")):
        add_user(engine, name, role)
    with TestClient(parts.create()) as client:
        yield SimpleNamespace(client=client, engine=engine, store=store, service=service)
    parts.close()


@pytest.fixture(scope="module")
def client(app_parts: SimpleNamespace) -> TestClient:
    return app_parts.client


@pytest.fixture(scope="module")
def as_(client: TestClient) -> dict[str, dict[str, str]]:
    """The Authorization header of each user, by name."""
    return {name: login(client, name) for name in ("adm", "sup", "alice", "bob")}


# hashing and sessions


def test_password_hash_is_salted_scrypt_and_only_the_right_password_matches() -> None:
    stored = hash_password("correct horse")
    assert "correct horse" not in stored and stored.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored) and not verify_password("", stored)
    assert hash_password("correct horse") != stored  # a new salt each time
    assert not verify_password("x", "plain-text-not-a-hash")


def test_sessions_expire_and_only_a_hash_of_the_token_is_stored(tmp_path: Path) -> None:
    now = [datetime(2026, 1, 1, 9, 0, tzinfo=UTC)]
    users = UserStore.from_url(f"sqlite:///{tmp_path / 'u.db'}", session_hours=12, clock=lambda: now[0])
    users.add("sup", "supervisor", "pw")
    assert users.login("sup", "wrong") is None and users.login("nobody", "pw") is None
    session = users.login("sup", "pw")
    assert session is not None and session.expires == now[0] + timedelta(hours=12)
    with users.engine.connect() as c:
        stored = [row[0] for row in c.exec_driver_sql("SELECT token_sha256 FROM voicebot_sessions")]
    assert stored == [hashlib.sha256(session.token.encode()).hexdigest()]
    now[0] += timedelta(hours=11, minutes=59)
    assert users.session_user(session.token) is not None
    now[0] += timedelta(minutes=1)
    assert users.session_user(session.token) is None
    assert users.session_user("forged") is None and users.session_user(None) is None


# who may call what

DATA_APIS = [
    ("GET", "/api/calls"), ("GET", "/api/calls/c-alice"), ("GET", "/api/calls/c-alice/transfer"),
    ("GET", "/api/queues"), ("GET", "/api/queues/general/stats"), ("GET", "/api/agents"),
    ("GET", "/api/agents/alice"), ("POST", "/api/agents/alice/state"), ("POST", "/api/agents/alice/accept"),
    ("POST", "/api/agents/alice/phone"), ("POST", "/api/agents/alice/answer"),
    ("POST", "/api/agents/alice/decline"), ("POST", "/api/agents/alice/hangup"),
    ("GET", "/api/callbacks"), ("POST", "/api/callbacks/1"), ("GET", "/api/voicemails"),
    ("GET", "/api/voicemails/1.wav"), ("POST", "/api/voicemails/1"), ("GET", "/api/live"),
    ("GET", "/api/live/c-alice"), ("GET", "/api/stats"),
    ("GET", "/api/users"), ("POST", "/api/users"), ("DELETE", "/api/users/sup"), ("GET", "/api/audit"),
    ("GET", "/api/config"), ("POST", "/api/users/sup/password"),
    ("GET", "/api/me"),
]


@pytest.mark.parametrize(("method", "path"), DATA_APIS)
def test_every_data_api_needs_a_login(client: TestClient, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-session"}, {"Cookie": "voicebot_session=forged"}):
        res = client.request(method, path, headers=headers, json={})
        assert res.status_code == 401, (path, headers, res.text)
        assert res.json()["detail"] == "login required"


def test_what_is_open_without_a_login(client: TestClient) -> None:
    for path in ("/", "/healthz", "/metrics", "/login", "/static/login.html"):
        assert client.get(path).status_code == 200, path
    # The anonymous caller reads only their own call, with the key their call's answer gave them.
    assert client.get("/api/calls/c-bot", headers={"X-Call-Key": "guess"}).status_code == 401
    # Renegotiating someone else's call (its id is enough for pipecat) is refused without that call's key.
    offer = {"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "offer", "pc_id": "c-bot"}
    assert client.post("/api/offer", json=offer).status_code == 403


def test_events_websocket_needs_a_login(client: TestClient, as_: dict[str, dict[str, str]]) -> None:
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/ws/events") as ws:
        ws.receive_json()
    assert closed.value.code == 4401
    token = as_["sup"]["Authorization"].split()[1]
    with client.websocket_connect(f"/ws/events?token={token}") as ws:
        assert ws.receive_json()["type"] == "hello"


@pytest.mark.parametrize(
    ("user", "method", "path"),
    [
        ("alice", "GET", "/api/callbacks"), ("alice", "GET", "/api/voicemails"), ("alice", "GET", "/api/users"),
        ("alice", "GET", "/api/audit"), ("alice", "GET", "/api/stats"), ("alice", "POST", "/api/agents/bob/state"),
        ("alice", "GET", "/api/agents/bob"), ("alice", "POST", "/api/agents/bob/hangup"),
        ("sup", "GET", "/api/users"), ("sup", "GET", "/api/audit"), ("sup", "POST", "/api/users"),
        ("sup", "GET", "/api/config"), ("sup", "POST", "/api/users/alice/password"),
    ],
)
def test_wrong_role_is_403(client: TestClient, as_: dict[str, dict[str, str]], user: str, method: str,
                           path: str) -> None:
    res = client.request(method, path, headers=as_[user], json={"state": "paused"})
    assert res.status_code == 403, res.text


def test_an_agent_sees_only_their_own_calls_and_self(client: TestClient, as_: dict[str, dict[str, str]]) -> None:
    alice = as_["alice"]
    assert client.get("/api/calls/c-alice", headers=alice).status_code == 200
    assert client.get("/api/calls/c-web", headers=alice).status_code == 200
    assert client.get("/api/calls/c-web", headers=as_["bob"]).status_code == 404
    for other in ("c-bob", "c-bot"):
        assert client.get(f"/api/calls/{other}", headers=alice).status_code == 404  # not even "it exists"
        assert client.get(f"/api/calls/{other}/transfer", headers=alice).status_code == 404
    assert sorted(c["id"] for c in client.get("/api/calls", headers=alice).json()) == ["c-alice", "c-web"]
    assert {c["id"] for c in client.get("/api/calls", headers=as_["sup"]).json()} == {
        "c-alice", "c-bob", "c-bot", "c-web"}
    assert [a["id"] for a in client.get("/api/agents", headers=alice).json()["agents"]] == ["alice"]
    assert len(client.get("/api/agents", headers=as_["sup"]).json()["agents"]) == 2
    res = client.post("/api/agents/alice/state", headers=alice, json={"state": "paused", "reason": "break"})
    assert res.status_code == 200 and res.json()["state"] == "paused"
    # A supervisor may set anyone's state.
    assert client.post("/api/agents/bob/state", headers=as_["sup"], json={"state": "paused"}).status_code == 200


def test_agents_see_queue_lengths_not_who_is_waiting(app_parts: SimpleNamespace,
                                                     as_: dict[str, dict[str, str]]) -> None:
    client, service = app_parts.client, app_parts.service
    request = QueueRequest(queue="general", caller="5550100", summary="Caller Jane Doe wants a refund.",
                           reason="human_only")
    client.portal.call(lambda: service.runner.enqueue("c-wait", request))
    try:
        staff = client.get("/api/queues", headers=as_["sup"]).json()["queues"][0]["waiting"]
        agent = client.get("/api/queues", headers=as_["alice"]).json()["queues"][0]["waiting"]
        assert staff[0]["caller"] == "5550100" and staff[0]["summary"].startswith("Caller Jane")
        assert len(agent) == 1 and agent[0]["position"] == 1
        assert "caller" not in agent[0] and "summary" not in agent[0] and "call_id" not in agent[0]
    finally:
        client.portal.call(lambda: service.runner.hangup("c-wait"))


def test_opening_a_call_is_audited_and_its_text_redacted(client: TestClient, as_: dict[str, dict[str, str]]) -> None:
    record = client.get("/api/calls/c-bot", headers=as_["sup"]).json()
    texts = [t["text"] for t in record["turns"]]
    assert "my card is [card number]" in texts and "where is my order 45281" in texts
    assert CARD not in str(record)
    audit = client.get("/api/audit", headers=as_["adm"], params={"call_id": "c-bot"}).json()["audit"]
    assert audit[0]["username"] == "sup" and audit[0]["action"] == "open_call"
    assert client.get("/api/audit", headers=as_["sup"]).status_code == 403  # the log is the admin's


# login, cookie, logout, throttling


def test_cookie_login_logout_and_me(client: TestClient) -> None:
    res = client.post("/api/login", json={"username": "sup", "password": "pw-sup"})
    assert res.status_code == 200 and res.json()["role"] == "supervisor"
    set_cookie = res.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie
    client.cookies.clear()
    token = res.json()["token"]
    me = client.get("/api/me", headers={"Cookie": f"voicebot_session={token}"})
    assert me.json() == {"username": "sup", "role": "supervisor", "agent_id": None}
    assert client.post("/api/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_pages_redirect_to_the_login_form(client: TestClient) -> None:
    for page in ("/agent?agent=alice", "/supervisor"):
        res = client.get(page, follow_redirects=False)
        assert res.status_code == 303 and res.headers["location"].startswith("/login?next=%2F"), page
        assert res.headers["cache-control"] == "no-store"
    token = cookie(client, "alice")
    assert client.get("/agent", headers={"Cookie": f"voicebot_session={token}"}).status_code == 200
    assert client.get("/supervisor", headers={"Cookie": f"voicebot_session={token}"}).status_code == 403  # not an agent's
    dashboard = client.get("/supervisor", headers={"Cookie": f"voicebot_session={cookie(client, 'sup')}"})
    assert dashboard.status_code == 200 and "<html" in dashboard.text.lower()
    assert dashboard.headers["cache-control"] == "no-store"  # a logged-out browser must not show it from cache


def test_failed_logins_are_throttled_per_user_and_per_address(app_parts: SimpleNamespace) -> None:
    client = app_parts.client
    app_parts.admin_token = cookie(client, "adm")  # before the address is blocked
    try:
        for _ in range(5):
            assert client.post("/api/login", json={"username": "bob", "password": "guess"}).status_code == 401
        blocked = client.post("/api/login", json={"username": "bob", "password": "pw-bob"})
        assert blocked.status_code == 429 and 0 < int(blocked.headers["retry-after"]) <= 60
        # The same address is blocked for other names too (one guesser trying many users).
        assert client.post("/api/login", json={"username": "sup", "password": "pw-sup"}).status_code == 429
        admin = {"Authorization": f"Bearer {app_parts.admin_token}"}
        tries = client.get("/api/audit", headers=admin, params={"username": "bob"}).json()["audit"]
        assert [t["action"] for t in tries[:5]] == ["login_failed"] * 5 and tries[0]["detail"] == "testclient"
    finally:
        client.app.state.login_throttle = None  # the other tests log in from the same test address


def test_throttle_window_per_key() -> None:
    now = [100.0]
    throttle = LoginThrottle(limit=3, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("user:bob") == 0
        throttle.failed("user:bob", "addr:1")
    assert throttle.retry_after("user:bob") == 60 and throttle.retry_after("addr:2", "user:ann") == 0
    now[0] += 59.5
    assert throttle.retry_after("user:bob") == 1
    now[0] += 0.5
    assert throttle.retry_after("user:bob") == 0


def test_users_api(client: TestClient, as_: dict[str, dict[str, str]]) -> None:
    admin = as_["adm"]
    res = client.post("/api/users", headers=admin, json={"username": "carol", "role": "agent", "password": "pw"})
    assert res.status_code == 201 and res.json() == {"username": "carol", "role": "agent", "agent_id": "carol"}
    assert client.post("/api/users", headers=admin,
                       json={"username": "carol", "role": "agent", "password": "pw"}).status_code == 409
    bad = client.post("/api/users", headers=admin, json={"username": "dan", "role": "boss", "password": "pw"})
    assert bad.status_code == 400 and "unknown role" in bad.json()["detail"]
    assert "carol" in [u["username"] for u in client.get("/api/users", headers=admin).json()["users"]]
    carol = login(client, "carol", "pw")
    assert client.delete("/api/users/carol", headers=admin).status_code == 200
    assert client.get("/api/me", headers=carol).status_code == 401  # her sessions ended with her
    assert client.delete("/api/users/adm", headers=admin).status_code == 400  # not yourself
    assert client.delete("/api/users/nobody", headers=admin).status_code == 404


def test_password_api_admin_or_yourself_with_the_current_one(client: TestClient,
                                                            as_: dict[str, dict[str, str]]) -> None:
    admin = as_["adm"]
    assert client.post("/api/users", headers=admin,
                       json={"username": "dave", "role": "supervisor", "password": "old-pw"}).status_code == 201
    first, second = login(client, "dave", "old-pw"), login(client, "dave", "old-pw")
    # Yourself: the current password is needed, and only your other sessions end.
    wrong = client.post("/api/users/dave/password", headers=first, json={"current": "nope", "password": "x"})
    assert wrong.status_code == 403 and "current password" in wrong.json()["detail"]
    assert client.post("/api/users/dave/password", headers=first, json={"password": "x"}).status_code == 403
    res = client.post("/api/users/dave/password", headers=first, json={"current": "old-pw", "password": "mine"})
    assert res.status_code == 200, res.text
    assert client.get("/api/me", headers=first).status_code == 200
    assert client.get("/api/me", headers=second).status_code == 401
    # Someone else's: only an admin, without the current password; all of that user's sessions end.
    assert client.post("/api/users/sup/password", headers=first, json={"current": "pw-sup", "password": "y"}
                       ).status_code == 403
    assert client.post("/api/users/dave/password", headers=admin, json={"password": ""}).status_code == 400
    assert client.post("/api/users/nobody/password", headers=admin, json={"password": "z"}).status_code == 404
    assert client.post("/api/users/dave/password", headers=admin, json={"password": "new-pw"}).status_code == 200
    assert client.get("/api/me", headers=first).status_code == 401
    assert client.post("/api/login", json={"username": "dave", "password": "mine"}).status_code == 401
    login(client, "dave", "new-pw")
    # The users list says when each user was created and last logged in; the audit log keeps who did what.
    dave = next(u for u in client.get("/api/users", headers=admin).json()["users"] if u["username"] == "dave")
    assert dave["role"] == "supervisor" and dave["created"] and dave["last_login"] >= dave["created"]
    sets = client.get("/api/audit", headers=admin, params={"action": "password_set"}).json()["audit"]
    assert [(r["username"], r["detail"]) for r in sets[:2]] == [("adm", "dave"), ("dave", "dave")]
    assert {r["action"] for r in client.get("/api/audit", headers=admin, params={"username": "dave"}).json()["audit"]
            } == {"login", "login_failed", "password_failed", "password_set"}
    assert client.delete("/api/users/dave", headers=admin).status_code == 200


def test_admin_sees_the_effective_config_without_the_database_password(app_parts: SimpleNamespace,
                                                                      as_: dict[str, dict[str, str]]) -> None:
    settings = app_parts.client.app.state.runtime.settings
    url = settings.database.url
    settings.database.url = "postgresql://voicebot:s3cret@db.example/voicebot"
    try:
        config = app_parts.client.get("/api/config", headers=as_["adm"]).json()
    finally:
        settings.database.url = url
    assert config["database"]["url"] == "postgresql://voicebot:***@db.example/voicebot"
    assert config["auth"]["session_hours"] == 12 and config["privacy"]["redact"] is True
    assert [a["id"] for a in config["agents"]] == ["alice", "bob"]
