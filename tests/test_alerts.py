"""Supervisor alerts with a lifecycle on the real app (uvicorn on a loopback port, a real SQLite file, real logins):
an alert raised by a frustrated caller is stored, listed, acknowledged and assigned by a supervisor (audited, every
dashboard told over the websocket), seen by the agent it was assigned to, and resolved when its call ends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from auth_helpers import add_user, cookie, login
from sqlalchemy import create_engine
from test_supervisor_api import Server
from websockets.sync.client import connect

from voicebot.alerts import AlertBook, alert_id
from voicebot.events import EventBus
from voicebot.storage import CallStore
from voicebot.storage.schema import upgrade
from voicebot.users import UserStore

RECV_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("alerts")) as srv:
        add_user(srv.engine, "sup", "supervisor")
        add_user(srv.engine, "sup2", "supervisor")
        add_user(srv.engine, "alice", "agent", agent_id="alice")
        add_user(srv.engine, "bob", "agent", agent_id="bob")
        yield srv


def recv_until(ws, until) -> list[dict[str, Any]]:
    got = []
    while True:
        got.append(json.loads(ws.recv(timeout=RECV_TIMEOUT_S)))
        if until(got[-1]):
            return got


def frustrated_caller(store: CallStore, call_id: str) -> None:
    now = datetime.now(UTC)
    store.open_call(call_id, "sip", "+15550177")
    store.add_turn(call_id, "caller", "this is the third time I call", now, end=now,
                   extra={"signals": {"frustration": 0.85, "frustration_level": "frustrated",
                                      "frustration_trend": "rising", "frustration_explanation": "third call"}})


def test_an_alert_is_kept_acknowledged_assigned_and_resolved(server: Server) -> None:
    sup, sup2, alice = login(server.url, "sup"), login(server.url, "sup2"), login(server.url, "alice")
    with connect(f"{server.ws_url}?token={cookie(server.url, 'sup2')}") as other_dashboard, \
            connect(f"{server.ws_url}?token={cookie(server.url, 'alice')}") as agent_page:
        recv_until(other_dashboard, lambda e: e["type"] == "hello")
        recv_until(agent_page, lambda e: e["type"] == "hello")
        frustrated_caller(server.store, "a1")
        raised = recv_until(other_dashboard, lambda e: e["type"] == "alert")[-1]
        assert raised["id"] == alert_id("a1", "frustration", 1) and raised["kind"] == "frustration"

        # Stored: a reload (or another dashboard) reads the same alert; the agent has none assigned yet.
        [listed] = httpx.get(server.url + "/api/alerts?open=1", headers=sup).json()["alerts"]
        assert listed["id"] == raised["id"] and listed["call_id"] == "a1" and listed["open"]
        assert listed["acked_by"] is None and listed["assigned_to"] is None
        assert "third call" in listed["message"]
        assert httpx.get(server.url + "/api/alerts", headers=alice).json() == {"alerts": []}

        # Only supervisors and admins act on alerts (an agent acknowledges those assigned to them: below).
        ack_url = f"{server.url}/api/alerts/{raised['id']}/ack"
        assign_url = f"{server.url}/api/alerts/{raised['id']}/assign"
        assert httpx.post(ack_url, headers=alice).status_code == 403
        assert httpx.post(assign_url, headers=alice, json={"user": "alice"}).status_code == 403
        assert httpx.post(ack_url).status_code == 401

        acked = httpx.post(ack_url, headers=sup)
        assert acked.status_code == 200 and acked.json()["acked_by"] == "sup" and acked.json()["acked_at"]
        update = recv_until(other_dashboard, lambda e: e["type"] == "alert.updated")[-1]
        assert update["alert"]["id"] == raised["id"] and update["alert"]["acked_by"] == "sup"
        again = httpx.post(ack_url, headers=sup2)
        assert again.status_code == 409 and "acknowledged by sup" in again.json()["detail"]

        assert httpx.post(assign_url, headers=sup, json={"user": "nobody"}).status_code == 400
        assert httpx.post(assign_url, headers=sup, json={}).status_code == 400
        assert httpx.post(f"{server.url}/api/alerts/nope/ack", headers=sup).status_code == 404
        assigned = httpx.post(assign_url, headers=sup, json={"user": "alice"})
        assert assigned.status_code == 200
        assert assigned.json()["assigned_to"] == "alice" and assigned.json()["assigned_by"] == "sup"
        # The agent's page is told (the call was never theirs) and the agent now lists it.
        told = recv_until(agent_page, lambda e: e["type"] == "alert.updated")[-1]
        assert told["alert"]["assigned_to"] == "alice"
        [mine] = httpx.get(server.url + "/api/alerts?open=1", headers=alice).json()["alerts"]
        assert mine["id"] == raised["id"] and mine["acked_by"] == "sup"

        # The call ends: the alert is resolved, no longer open, and every dashboard is told.
        server.store.close_call("a1", "completed", "caller_hangup")
        resolved = recv_until(other_dashboard, lambda e: e["type"] == "alert.updated" and
                              e["alert"]["resolved_at"] is not None)[-1]
        assert resolved["alert"]["open"] is False
    assert httpx.get(server.url + "/api/alerts?open=1", headers=sup).json() == {"alerts": []}
    [kept] = httpx.get(server.url + "/api/alerts", headers=sup).json()["alerts"]
    assert kept["resolved_at"] and kept["assigned_to"] == "alice"

    audit = UserStore(server.engine).audit_log(call_id="a1")
    assert [(r["username"], r["action"], r["detail"]) for r in audit] == [
        ("sup", "alert_assign", f"{raised['id']} to alice"), ("sup", "alert_ack", raised["id"])]


def test_an_alert_given_to_another_user_leaves_the_first_agents_page(server: Server) -> None:
    sup, alice = login(server.url, "sup"), login(server.url, "alice")
    with connect(f"{server.ws_url}?token={cookie(server.url, 'alice')}") as alice_page, \
            connect(f"{server.ws_url}?token={cookie(server.url, 'bob')}") as bob_page, \
            connect(f"{server.ws_url}?token={cookie(server.url, 'sup2')}") as dashboard:
        for ws in (alice_page, bob_page, dashboard):
            recv_until(ws, lambda e: e["type"] == "hello")
        frustrated_caller(server.store, "a2")
        raised = recv_until(dashboard, lambda e: e["type"] == "alert")[-1]
        assign_url = f"{server.url}/api/alerts/{raised['id']}/assign"
        for _ in range(100):  # the alert book stores the alert from the event, on its worker thread
            if httpx.post(assign_url, headers=sup, json={"user": "alice"}).status_code == 200:
                break
        assert recv_until(alice_page, lambda e: e["type"] == "alert.updated")[-1]["alert"]["assigned_to"] == "alice"

        # Given to bob: alice's page is told it is no longer hers (its id only), bob's gets the alert.
        assert httpx.post(assign_url, headers=sup, json={"user": "bob"}).status_code == 200
        taken = recv_until(alice_page, lambda e: e["type"].startswith("alert"))[-1]
        assert taken == {"type": "alert.withdrawn", "seq": taken["seq"], "ts": taken["ts"], "alert_id": raised["id"]}
        given = recv_until(bob_page, lambda e: e["type"].startswith("alert"))[-1]
        assert given["type"] == "alert.updated" and given["alert"]["assigned_to"] == "bob"
        update = recv_until(dashboard, lambda e: e["type"] == "alert.updated" and e["alert"]["assigned_to"] == "bob")
        assert update[-1]["withdrawn_from"] == "alice"  # supervisors see the whole change
        assert httpx.get(server.url + "/api/alerts?open=1", headers=alice).json() == {"alerts": []}
        assert httpx.post(f"{server.url}/api/alerts/{raised['id']}/ack", headers=alice).status_code == 403

        # Given to a supervisor: bob's page drops it; a later change reaches neither agent's page.
        assert httpx.post(assign_url, headers=sup, json={"user": "sup2"}).status_code == 200
        assert recv_until(bob_page, lambda e: e["type"].startswith("alert"))[-1]["type"] == "alert.withdrawn"
        assert httpx.post(f"{server.url}/api/alerts/{raised['id']}/ack", headers=sup).status_code == 200
        server.store.close_call("a2", "completed", "caller_hangup")
        recv_until(dashboard, lambda e: e["type"] == "alert.updated" and e["alert"]["resolved_at"] is not None)
        for page in (alice_page, bob_page):
            with pytest.raises(TimeoutError):
                page.recv(timeout=0.5)  # nothing more about an alert that is not theirs


def test_the_same_alert_from_two_nodes_is_stored_once(tmp_path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'alerts.db'}")
    upgrade(engine)

    async def main() -> list[str]:
        bus = EventBus()
        bus.bind()
        book = AlertBook(engine, bus)
        book.attach()
        for _node in ("a", "b"):  # each node of a cluster raises the alert it derived from the same events
            bus.publish("alert", id=alert_id("c9", "wait", 1), kind="wait", call_id="c9", queue="general",
                        message="A caller has waited 61 s in queue general.")
        alerts = await book.list()
        book.close()
        return [a.id for a in alerts]

    assert asyncio.run(main()) == [alert_id("c9", "wait", 1)]
