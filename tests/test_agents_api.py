"""The agent and queue REST API and the agent page (voicebot.server.agents) on the real app and ACD, with a
real SQLite file; no SIP and no models (no agent is rung in these tests)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from app_helpers import ModelLessApp, model_less_app
from auth_helpers import add_user, login
from fastapi.testclient import TestClient

from telephony.queue.live import TransferResult
from telephony.queue.request import QueueRequest
from voicebot.config import Settings
from voicebot.transfer import TransferService

AGENTS = [
    {"id": "alice", "name": "Alice Smith", "contact": "sip:alice@127.0.0.1:5999", "skills": ["billing"]},
    {"id": "bob", "name": "Bob", "contact": "sip:bob@127.0.0.1:5998"},
]
QUEUES = [{"name": "general"}, {"name": "billing", "skills": ["billing"], "service_level_s": 30}]


@pytest.fixture()
def parts(tmp_path: Path) -> ModelLessApp:
    # The routes under test never touch the bot: the runtime only lends the database (users) and the bus.
    settings = Settings(agents=AGENTS, queues=QUEUES)  # type: ignore[arg-type]
    return model_less_app(tmp_path / "voicebot.db", settings, store=False, queues=True)


@pytest.fixture()
def service(parts: ModelLessApp) -> TransferService:
    assert parts.service is not None
    return parts.service


@pytest.fixture()
def client(parts: ModelLessApp) -> Iterator[TestClient]:
    add_user(parts.engine, "sup", "supervisor")
    with TestClient(parts.create()) as c:
        c.headers.update(login(c, "sup"))
        yield c


def test_queues_list_waiting_callers_and_agents_with_state(client: TestClient, service: TransferService) -> None:
    body = client.get("/api/queues").json()
    assert [q["name"] for q in body["queues"]] == ["general", "billing"]
    general, billing = body["queues"]
    assert {a["id"]: a["state"] for a in general["agents"]} == {"alice": "offline", "bob": "offline"}
    assert [a["id"] for a in billing["agents"]] == ["alice"]  # only she has the skill
    assert general["waiting"] == [] and general["stats"]["waiting"] == 0

    request = QueueRequest(queue="billing", caller="5550100", summary="Caller Jane Doe, verified. Wants a refund.",
                           reason="human_only")
    assert client.portal is not None
    client.portal.call(lambda: service.runner.enqueue("call-1", request))  # type: ignore[union-attr]
    billing = client.get("/api/queues").json()["queues"][1]
    assert [w["call_id"] for w in billing["waiting"]] == ["call-1"]
    assert billing["waiting"][0]["summary"].startswith("Caller Jane Doe")
    assert billing["waiting"][0]["position"] == 1
    stats = client.get("/api/queues/billing/stats").json()
    assert stats["waiting"] == 1 and stats["service_level_s"] == 30
    client.portal.call(lambda: service.runner.hangup("call-1"))  # type: ignore[union-attr]
    assert client.get("/api/queues/billing/stats").json()["abandoned"] == 1


def test_agent_state_changes_and_errors(client: TestClient) -> None:
    res = client.post("/api/agents/alice/state", json={"state": "available"})
    assert res.status_code == 200 and res.json()["state"] == "available"
    res = client.post("/api/agents/bob/state", json={"state": "paused", "reason": "lunch"})
    assert res.json()["state"] == "paused" and res.json()["pause_reason"] == "lunch"
    agents = {a["id"]: a for a in client.get("/api/agents").json()["agents"]}
    assert agents["alice"]["state"] == "available" and agents["bob"]["state"] == "paused"
    assert client.get("/api/queues").json()["queues"][0]["agents"][1]["state"] == "paused"

    assert client.post("/api/agents/zoe/state", json={"state": "available"}).status_code == 404
    bad = client.post("/api/agents/alice/state", json={"state": "busy"})
    assert bad.status_code == 400 and "available" in bad.json()["detail"]
    assert client.post("/api/agents/alice/state", content=b"{nope", headers={"content-type": "application/json"}
                       ).status_code == 400
    assert client.post("/api/agents/alice/state", json=["available"]).status_code == 400
    assert client.get("/api/agents/zoe").status_code == 404
    assert client.get("/api/queues/nope/stats").status_code == 404
    one = client.get("/api/agents/alice").json()
    assert one["id"] == "alice" and one["current"] is None
    # Nothing offered: accept / decline / hang up say so.
    for action in ("accept", "decline", "hangup"):
        assert client.post(f"/api/agents/alice/{action}", json={}).status_code == 409


def test_callbacks_and_transfer_records(client: TestClient, service: TransferService) -> None:
    cb = service.callbacks.add(call_id="c1", caller="5550100", queue="general", reason="caller_request",
                               handoff={"summary": "x"})
    listed = client.get("/api/callbacks").json()["callbacks"]
    assert [c["id"] for c in listed] == [cb]
    assert client.post(f"/api/callbacks/{cb}", json={"status": "done"}).json()["status"] == "done"
    assert client.get("/api/callbacks").json()["callbacks"] == []
    assert len(client.get("/api/callbacks?status=all").json()["callbacks"]) == 1
    assert client.post(f"/api/callbacks/{cb}", json={"status": "later"}).status_code == 400
    assert client.post("/api/callbacks/999", json={"status": "done"}).status_code == 404

    assert client.get("/api/calls/c1/transfer").status_code == 404
    t0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    said = [("caller", "my card was charged twice", t0 + timedelta(seconds=3), t0 + timedelta(seconds=5)),
            ("agent", "hello this is alice", t0, t0 + timedelta(seconds=2))]
    service.records.add(TransferResult(call_id="c1", outcome="answered", queue="general", agent_id="alice",
                                       wait_s=4.25, talk_s=60.0), said)
    assert (service.records.call_ids_of_agent("alice"), service.records.call_ids_of_agent("bob")) == ({"c1"}, set())
    record = client.get("/api/calls/c1/transfer").json()
    transcript = record.pop("transcript")
    assert record == {"queue": "general", "agent_id": "alice", "outcome": "answered", "wait_s": 4.25,
                      "talk_s": 60.0, "callback_id": None, "voicemail_s": None, "agents_lost": []}
    assert [(t["speaker"], t["text"]) for t in transcript] == [("agent", "hello this is alice"),
                                                               ("caller", "my card was charged twice")]
    assert transcript[0]["start"] == "2026-01-01T12:00:00+00:00"


def test_an_agent_phone_offer_aiortc_cannot_use_is_a_400_saying_so(client: TestClient) -> None:
    res = client.post("/api/agents/alice/phone", json={"sdp": "v=0\r\nm=audio 9 nonsense\r\n", "type": "offer"})
    assert res.status_code == 400 and res.json()["detail"].startswith("cannot use this SDP offer: "), res.text
    # ... and leaves no phone behind that a call would ring until its timeout
    assert client.app.state.phones.get("alice") is None  # type: ignore[attr-defined]
    assert "alice" not in client.app.state.phones.phones  # type: ignore[attr-defined]


def test_agent_page_is_served_offline(client: TestClient) -> None:
    page = client.get("/agent")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    script = client.get("/static/agent.js")  # its own file: the CSP allows no inline script
    assert script.status_code == 200 and '<script src="/static/agent.js">' in page.text
    html = page.text + script.text
    assert "/api/agents/" in html and "Accept" in html and "Transcript" in html
    assert "http://" not in html and "https://" not in html  # no CDN: works without internet


def test_without_queues_the_api_says_how_to_configure_them(tmp_path: Path) -> None:
    parts = model_less_app(tmp_path / "voicebot.db", store=False)
    assert TransferService.from_runtime(parts.runtime) is None
    add_user(parts.engine, "sup", "supervisor")
    with TestClient(parts.create()) as c:
        c.headers.update(login(c, "sup"))
        res = c.get("/api/queues")
        assert res.status_code == 404 and "agents:" in res.json()["detail"]
        assert c.post("/api/agents/alice/state", json={"state": "available"}).status_code == 404


def test_voicemails_list_audio_and_status(client: TestClient, service: TransferService) -> None:
    assert client.get("/api/voicemails").json() == {"voicemails": []}
    audio = (np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440) * 5000).astype(np.int16).tobytes()
    vid = service.records.add_voicemail(call_id="c9", queue="general", caller="5550100", reason="max_wait",
                                        audio=audio, transcript="please call me back",
                                        handoff={"summary": "Caller wants a refund."})
    listed = client.get("/api/voicemails").json()["voicemails"]
    assert [(v["id"], v["seconds"], v["transcript"], v["summary"]) for v in listed] == [
        (vid, 1.0, "please call me back", "Caller wants a refund.")]
    wav = client.get(f"/api/voicemails/{vid}.wav")
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    samples, rate = sf.read(io.BytesIO(wav.content), dtype="int16")
    assert rate == 16000 and np.array_equal(samples, np.frombuffer(audio, np.int16))
    assert client.post(f"/api/voicemails/{vid}", json={"status": "heard"}).json()["status"] == "heard"
    assert client.get("/api/voicemails").json()["voicemails"] == []
    assert len(client.get("/api/voicemails?status=all").json()["voicemails"]) == 1
    assert client.post(f"/api/voicemails/{vid}", json={"status": "lost"}).status_code == 400
    assert client.get("/api/voicemails/999.wav").status_code == 404
