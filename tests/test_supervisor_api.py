"""The events API and the dashboard's data routes on the real app, served by uvicorn on a loopback port, with a
real SQLite file and real logins; HTTP through httpx, the websocket through the `websockets` client. Calls are
written through the call store (the one way calls are recorded), so its events are the ones a call makes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from app_helpers import model_less_app
from auth_helpers import add_user, cookie, login
from net_helpers import serve_app
from sqlalchemy import update
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from voicebot.config import Settings
from voicebot.storage.models import CallRow

RECV_TIMEOUT_S = 10.0


class Server:
    """create_app() on uvicorn in a thread; the runtime lends only what these routes use (no models)."""

    def __init__(self, tmp_path):
        settings = Settings(database={"url": f"sqlite:///{tmp_path / 'voicebot.db'}"},  # type: ignore[arg-type]
                            supervisor={"alert_frustration": "frustrated"})  # type: ignore[arg-type]
        self.parts = model_less_app(tmp_path / "voicebot.db", settings)
        assert self.parts.store is not None
        self.engine, self.events, self.store = self.parts.engine, self.parts.events, self.parts.store
        self.app = self.parts.create()
        self._serving = serve_app(self.app, ws="websockets-sansio")

    def __enter__(self) -> Server:
        self.url = self._serving.__enter__()
        self.ws_url = self.url.replace("http://", "ws://") + "/ws/events"
        return self

    def __exit__(self, *exc: object) -> None:
        self._serving.__exit__(None, None, None)
        self.parts.close()

    def drain_store(self) -> None:
        """Wait until the call store's writer has done everything queued so far."""
        assert self.store.flush(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("supervisor-api")) as srv:
        add_user(srv.engine, "sup", "supervisor")
        add_user(srv.engine, "alice", "agent", agent_id="alice")
        add_user(srv.engine, "bob", "agent", agent_id="bob")
        yield srv


@pytest.fixture(scope="module")
def sup(server: Server) -> dict[str, str]:
    return login(server.url, "sup")


def recv(ws, until=None) -> list[dict[str, Any]]:
    """Messages until one satisfies ``until`` (inclusive), or just the next one."""
    got = []
    while True:
        got.append(json.loads(ws.recv(timeout=RECV_TIMEOUT_S)))
        if until is None or until(got[-1]):
            return got


def call_events(events: list[dict[str, Any]], call_id: str) -> list[str]:
    return [e["type"] for e in events if e.get("call_id") == call_id]


def test_no_login_no_data(server: Server) -> None:
    for path in ("/api/live", "/api/live/x", "/api/calls", "/api/calls?intent=refund_status", "/api/stats"):
        res = httpx.get(server.url + path)
        assert res.status_code == 401, path
        assert res.json() == {"detail": "login required"}
    res = httpx.get(server.url + "/api/live", headers={"Authorization": "Bearer not-a-session"})
    assert res.status_code == 401
    for url in (server.ws_url, server.ws_url + "?token=not-a-session"):
        with connect(url) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=RECV_TIMEOUT_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def test_agents_may_not_read_the_figures(server: Server) -> None:
    assert httpx.get(server.url + "/api/stats", headers=login(server.url, "alice")).status_code == 403


def test_hello_then_the_events_of_a_call(server: Server, sup: dict[str, str]) -> None:
    server.store.open_call("before", "sip", "+15550111", "800")  # in progress before the dashboard opens
    server.drain_store()
    token = cookie(server.url, "sup")
    with connect(f"{server.ws_url}?token={token}") as ws:
        [hello] = recv(ws)
        assert hello["type"] == "hello" and hello["user"]["role"] == "supervisor"
        assert "before" in [c["id"] for c in hello["calls"]]
        assert hello["queues"] == [] and hello["agents"] == []  # no agent queue in this server
        assert hello["frustration_levels"] == {"annoyed": 0.4, "frustrated": 0.7}  # prosody's defaults

        now = datetime.now(UTC)
        server.store.open_call("c1", "webrtc", "+15550123")
        server.store.add_turn(
            "c1", "caller", "where is my order and I want a refund", now, end=now,
            intents=[{"name": "order_status", "confidence": 0.9, "slots": {}},
                     {"name": "refund_status", "confidence": 0.8, "slots": {}}],
            extra={"signals": {"frustration": 0.81, "frustration_level": "frustrated",
                               "frustration_trend": "rising", "frustration_explanation": "third time"},
                   "entities": [{"type": "order_number", "value": "12345", "text": "12345"}]})
        bot = server.store.add_turn("c1", "bot", "Let me look.", now, extra={"kind": "reply", "trace": {"steps": []}})
        server.store.update_turn(bot, latency_ms=655.5)
        events = recv(ws, until=lambda e: e["type"] == "call.updated" and e["call"]["last_latency_ms"] == 655.5)

    assert call_events(events, "c1")[:2] == ["call.started", "call.updated"]
    turns = [e["turn"] for e in events if e["type"] == "turn"]
    assert [t["speaker"] for t in turns] == ["caller", "bot"]
    assert turns[0]["text"] == "where is my order and I want a refund"
    assert turns[0]["extra"]["entities"][0]["type"] == "order_number"
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    [alert] = [e for e in events if e["type"] == "alert"]
    assert alert["kind"] == "frustration" and alert["call_id"] == "c1"
    summary = events[-1]["call"]
    assert summary["intents"] == ["order_status", "refund_status"] and summary["turns"] == 2
    assert summary["frustration"]["level"] == "frustrated" and summary["frustration"]["trend"] == "rising"

    live = httpx.get(server.url + "/api/live", headers=sup).json()["calls"]
    assert {"before", "c1"} <= {c["id"] for c in live}
    detail = httpx.get(server.url + "/api/live/c1", headers=sup).json()
    assert [t["speaker"] for t in detail["turns"]] == ["caller", "bot"] and detail["handoff"] is None
    assert detail["state"] == "bot" and detail["last_latency_ms"] == 655.5
    audit = server.app.state.users.audit_log(10, 0, "sup", "c1")
    assert [a["action"] for a in audit] == ["open_call"]

    server.store.close_call("c1", "resolved", "bot_hangup")
    server.store.close_call("before", "abandoned", "caller_hangup")
    server.drain_store()
    assert httpx.get(server.url + "/api/live/c1", headers=sup).status_code == 404


def test_agents_get_only_their_own_calls(server: Server, sup: dict[str, str]) -> None:
    for call_id in ("mine", "theirs"):
        server.store.open_call(call_id, "sip", "+1555000" + str(len(call_id)))
    server.drain_store()
    with connect(f"{server.ws_url}?token={cookie(server.url, 'alice')}") as agent_ws, \
            connect(server.ws_url, additional_headers=sup) as sup_ws:
        assert recv(agent_ws)[0]["calls"] == []  # nothing handed to alice yet
        assert {"mine", "theirs"} <= {c["id"] for c in recv(sup_ws)[0]["calls"]}
        # What the agent queue does when an agent takes a call (voicebot.transfer).
        server.events.publish("call.state", call_id="mine", state="agent", agent_id="alice")
        server.store.set_agent("mine", "alice")
        server.events.publish("call.state", call_id="theirs", state="agent", agent_id="bob")
        server.store.set_agent("theirs", "bob")
        now = datetime.now(UTC)
        server.store.add_turn("theirs", "agent", "Bob here", now)
        server.store.add_turn("mine", "agent", "Alice here", now)
        # Events arrive in order: once alice has her own turn, bob's (published before it) would be there.
        got = recv(agent_ws, until=lambda e: e["type"] == "turn")
        seen = recv(sup_ws, until=lambda e: e["type"] == "turn" and e["call_id"] == "mine")

    assert {e.get("call_id") for e in got} == {"mine"}
    assert got[-1]["turn"]["text"] == "Alice here"
    assert "theirs" in {e.get("call_id") for e in seen}  # the supervisor sees both

    alice = login(server.url, "alice")
    assert [c["id"] for c in httpx.get(server.url + "/api/live", headers=alice).json()["calls"]] == ["mine"]
    assert httpx.get(server.url + "/api/live/mine", headers=alice).status_code == 200
    assert httpx.get(server.url + "/api/live/theirs", headers=alice).status_code == 404
    for call_id in ("mine", "theirs"):
        server.store.close_call(call_id, "handoff", "handoff")
    server.drain_store()
    rows = httpx.get(server.url + "/api/calls", headers=alice).json()
    assert [r["id"] for r in rows] == ["mine"] and rows[0]["agent_id"] == "alice"


@pytest.fixture(scope="module")
def history(server: Server) -> dict[str, Any]:
    """Six finished calls on two days, written through the store; their start times set afterwards."""
    day = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    calls = [
        # id, caller, dialled, start, intents, frustration, outcome, bot latencies
        ("h1", "+15551110001", "800", day, ["order_status"], 0.1, "resolved", [500.0, 700.0]),
        ("h2", "+15551110002", "800", day + timedelta(minutes=20), ["refund_status", "order_status"], 0.8,
         "handoff", [900.0]),
        ("h3", "+15552220003", "900", day + timedelta(hours=1), ["reset_password"], 0.3, "resolved", [1400.0]),
        ("h4", "+15552220004", "900", day + timedelta(hours=1, minutes=5), ["cancel_subscription"], 0.55,
         "abandoned", []),
        ("h5", "+15553330005", "800", day + timedelta(days=1), ["order_status"], None, "resolved", [300.0]),
        ("h6", None, None, day + timedelta(days=1, hours=2), [], None, "abandoned", []),
    ]
    store = server.store
    for call_id, caller, dialled, start, intents, frustration, outcome, latencies in calls:
        store.open_call(call_id, "sip" if caller else "webrtc", caller, dialled)
        extra = {"signals": {"frustration": frustration, "frustration_level": "calm"}} if frustration else None
        store.add_turn(call_id, "caller", f"words of call {call_id} about {' '.join(intents) or 'nothing'}", start,
                       end=start, intents=[{"name": n} for n in intents], extra=extra)
        for ms in latencies:
            store.add_turn(call_id, "bot", "reply", start, latency_ms=ms)
        store.close_call(call_id, outcome, "bot_hangup")
    server.drain_store()
    with store._sessions.begin() as s:
        for call_id, _caller, _dialled, start, *_rest in calls:
            end = start + timedelta(minutes=3)
            s.execute(update(CallRow).where(CallRow.id == call_id).values(start=start, end=end))
    return {"day": day}


def ids(server: Server, headers: dict[str, str], **params: Any) -> list[str]:
    res = httpx.get(server.url + "/api/calls", params=params, headers=headers)
    assert res.status_code == 200, res.text
    rows = res.json()
    assert int(res.headers["x-total-count"]) >= len(rows)
    return [r["id"] for r in rows]


def test_search_filters_each_narrow(server: Server, sup: dict[str, str], history: dict[str, Any]) -> None:
    window = {"since": "2026-03-01", "until": "2026-03-05"}
    assert ids(server, sup, **window) == ["h6", "h5", "h4", "h3", "h2", "h1"]  # newest first
    assert ids(server, sup, number="5552220", **window) == ["h4", "h3"]
    assert ids(server, sup, number="900", **window) == ["h4", "h3"]  # the dialled number too
    assert ids(server, sup, intent="order_status", **window) == ["h5", "h2", "h1"]
    assert ids(server, sup, intent="order", **window) == []  # a whole intent name, not a part of one
    assert ids(server, sup, outcome="abandoned", **window) == ["h6", "h4"]
    assert ids(server, sup, since="2026-03-02T10:00:00Z", until="2026-03-03") == ["h4", "h3"]
    assert ids(server, sup, min_frustration=0.5, **window) == ["h4", "h2"]
    assert ids(server, sup, q="RESET_password", **window) == ["h3"]  # words of the transcript, any case
    assert ids(server, sup, q="h5") == ["h5"]
    assert ids(server, sup, intent="order_status", min_frustration=0.5, **window) == ["h2"]
    assert ids(server, sup, limit=2, offset=1, **window) == ["h5", "h4"]

    res = httpx.get(server.url + "/api/calls", params={"intent": "order_status", **window}, headers=sup)
    assert res.headers["x-total-count"] == "3"
    h2 = next(r for r in res.json() if r["id"] == "h2")
    assert h2["intents"] == ["refund_status", "order_status"] and h2["frustration_max"] == 0.8
    assert h2["duration_s"] == 180.0 and h2["outcome"] == "handoff" and h2["agent_id"] is None

    bad = httpx.get(server.url + "/api/calls", params={"since": "yesterday"}, headers=sup)
    assert bad.status_code == 400 and "since" in bad.json()["detail"]
    assert ids(server, login(server.url, "bob"), **window) == []  # no history call was handed to bob


def test_stats_count_the_window(server: Server, sup: dict[str, str], history: dict[str, Any]) -> None:
    res = httpx.get(server.url + "/api/stats", params={"since": "2026-03-02T00:00:00Z", "until": "2026-03-03"},
                    headers=sup)
    assert res.status_code == 200, res.text
    stats = res.json()
    per_hour = {h["hour"][:13]: h["calls"] for h in stats["calls_per_hour"]}
    assert len(per_hour) == 24 and sum(per_hour.values()) == 4
    assert per_hour["2026-03-02T09"] == 2 and per_hour["2026-03-02T10"] == 2 and per_hour["2026-03-02T11"] == 0
    assert stats["outcomes"] == {"resolved": 2, "handoff": 1, "abandoned": 1}
    latency = stats["latency_ms"]
    assert latency["n"] == 4 and latency["p50"] == 700.0 and latency["p95"] == 1400.0
    buckets = {b["le"]: b["n"] for b in latency["histogram"]}
    assert buckets[500] == 1 and buckets[750] == 1 and buckets[1000] == 1 and buckets[1500] == 1
    assert sum(buckets.values()) == 4
    by_hour = {h["hour"][:13]: (h["mean"], h["max"]) for h in stats["frustration_by_hour"]}
    assert by_hour == {"2026-03-02T09": (0.45, 0.8), "2026-03-02T10": (0.425, 0.55)}

    next_day = httpx.get(server.url + "/api/stats", params={"since": "2026-03-03", "until": "2026-03-04"},
                         headers=sup).json()
    assert next_day["calls"] == 2 and next_day["outcomes"] == {"resolved": 1, "abandoned": 1}
    assert next_day["latency_ms"]["p50"] == 300.0
    bad = httpx.get(server.url + "/api/stats", params={"since": "2026-03-04", "until": "2026-03-03"}, headers=sup)
    assert bad.status_code == 400


def test_hello_carries_the_queue_board_of_the_agent_queue(tmp_path) -> None:
    """With the agent queue configured, the snapshot holds its queues and agents (the body of /api/queues)."""
    from fastapi.testclient import TestClient


    settings = Settings(agents=[{"id": "alice", "name": "Alice", "contact": "webrtc"}],  # type: ignore[list-item]
                        queues=[{"name": "general"}])  # type: ignore[list-item]
    parts = model_less_app(tmp_path / "voicebot.db", settings, queues=True)
    engine, events = parts.engine, parts.events
    add_user(engine, "sup", "supervisor")
    with TestClient(parts.create()) as client:
        headers = login(client, "sup")
        with client.websocket_connect("/ws/events", headers=headers) as ws:
            hello = ws.receive_json()
            # The summaries of waiting callers quote them: a card number said to the bot never reaches a board.
            events.publish("queue", agents=[], queues=[
                {"name": "general", "waiting": [{"summary": "Paid with card 4111 1111 1111 1111, double charge."}]}])
            queue = next(e for e in iter(ws.receive_json, None) if e["type"] == "queue")
        summary = queue["queues"][0]["waiting"][0]["summary"]
        assert "4111" not in summary and "double charge" in summary
        assert [q["name"] for q in hello["queues"]] == ["general"]
        assert [(a["id"], a["state"]) for a in hello["agents"]] == [("alice", "offline")]
        add_user(engine, "alice", "agent")
        with client.websocket_connect("/ws/events", headers=login(client, "alice")) as ws:
            assert ws.receive_json()["queues"] == []  # the board is for supervisors
    parts.close()


def test_hello_tells_the_dashboard_the_configured_frustration_levels(tmp_path) -> None:
    """The dashboard grades scores and marks its plot with the thresholds of the config's ``prosody`` section."""
    from fastapi.testclient import TestClient

    settings = Settings(prosody={"annoyed": 0.3, "frustrated": 0.55})  # type: ignore[arg-type]
    parts = model_less_app(tmp_path / "voicebot.db", settings)
    add_user(parts.engine, "sup", "supervisor")
    with TestClient(parts.create()) as client:
        ws_ = client.websocket_connect("/ws/events", headers=login(client, "sup"))
        with ws_ as ws:
            assert ws.receive_json()["frustration_levels"] == {"annoyed": 0.3, "frustrated": 0.55}
    parts.close()
