"""The HTTP API without a call: caller page, signaling errors, records, metrics, start-up errors."""

from __future__ import annotations

import re

import pytest
from auth_helpers import add_user, login
from click.testing import CliRunner
from fastapi.testclient import TestClient

from voicebot.config import Settings
from voicebot.runtime import Runtime
from voicebot.server.access import call_key
from voicebot.server.app import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings()
    settings.database.url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'voicebot.db'}"
    runtime = Runtime.load(settings, warm_up=False)
    runtime.store.open_call("call-1", "webrtc", "+441234")
    add_user(runtime.engine.database.engine, "sup", "supervisor")
    with TestClient(create_app(runtime)) as test_client:
        test_client.headers.update(login(test_client, "sup"))
        yield test_client
    runtime.close()


def test_caller_page_works_offline(client):
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert 'id="call"' in html and 'id="hangup"' in html and 'id="transcript"' in html
    # Every script and stylesheet comes from this server: no CDN.
    assert not re.search(r"""(src|href)=["']https?://""", html)
    script = client.get("/static/caller.js")
    assert script.status_code == 200 and "/api/offer" in script.text
    assert "http://" not in script.text and "https://" not in script.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "offer"}', '"sdp"'),
        (b'{"sdp": "v=0\\r\\nm=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\n", "type": "answer"}', '"type" must be "offer"'),
        (b'{"sdp": "hello", "type": "offer"}', "not an SDP offer"),
        (b'{"sdp": "v=0\\r\\nm=audio 9 nonsense\\r\\n", "type": "offer"}', "cannot use this SDP offer"),
        (b'{"sdp": "v=0\\r\\nm=audio 1 x", "type": "offer", "request_data": {"caller_token": "x"}}', "caller_token"),
    ],
)
def test_malformed_offer_is_a_400_with_a_message(client, body, message):
    res = client.post("/api/offer", content=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 400
    assert message in res.json()["detail"]


def test_trickle_ice_errors(client):
    res = client.patch("/api/offer", json={"pc_id": "nope", "candidates": []})
    assert res.status_code == 403 and "X-Call-Key" in res.json()["detail"]  # only the caller may touch its call
    key = call_key(client.app, "nope")  # type: ignore[arg-type]
    res = client.patch("/api/offer", json={"pc_id": "nope", "candidates": []}, headers={"X-Call-Key": key})
    assert res.status_code == 404
    res = client.patch("/api/offer", json={"candidates": []})
    assert res.status_code == 400 and "pc_id" in res.json()["detail"]
    res = client.patch("/api/offer", json={"pc_id": "x", "candidates": "no"})
    assert res.status_code == 400


def test_call_records(client):
    calls = client.get("/api/calls").json()
    assert [c["id"] for c in calls] == ["call-1"]
    record = client.get("/api/calls/call-1").json()
    assert record["caller_id"] == "+441234" and record["end"] is None and record["turns"] == []
    missing = client.get("/api/calls/nope")
    assert missing.status_code == 404


def test_metrics_are_prometheus_text(client):
    res = client.get("/metrics")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/plain")
    for name in ["voicebot_active_calls", "voicebot_reply_latency_seconds", "voicebot_stt_seconds", "voicebot_tts_seconds"]:
        assert f"# TYPE {name}" in res.text


def test_serve_names_a_missing_model_and_exits(tmp_path):
    from voicebot.cli import cli

    missing = tmp_path / "no-whisper-here"
    config = tmp_path / "voicebot.yaml"
    config.write_text(f"models:\n  stt:\n    model: {missing}\n")
    result = CliRunner().invoke(cli, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert str(missing) in result.output
    assert "Traceback" not in result.output


def test_serve_purges_call_records_past_the_retention_at_start(tmp_path):
    import time
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from voicebot.storage.models import CallRow

    settings = Settings()
    settings.database.url = f"sqlite:///{tmp_path / 'voicebot.db'}"
    settings.memory.contact_retention_days = 30
    runtime = Runtime.load(settings, warm_up=False)
    now = datetime.now(UTC)
    for call_id in ("old", "recent"):
        runtime.store.open_call(call_id, "sip", "+15550001111")
        runtime.store.add_turn(call_id, "caller", "my card is on file", now)
        runtime.store.close_call(call_id, "resolved", "caller_hangup")
    with runtime.store.engine.begin() as conn:
        conn.execute(update(CallRow).where(CallRow.id == "old").values(start=now - timedelta(days=31)))
    try:
        with TestClient(create_app(runtime)):
            deadline = time.monotonic() + 30
            while runtime.store.get("old")["turns"] and time.monotonic() < deadline:
                time.sleep(0.05)  # polls for the purge task's result, bounded
        assert runtime.store.get("old")["turns"] == [] and runtime.store.get("old")["caller_id"] is None
        assert runtime.store.get("recent")["turns"]
    finally:
        runtime.close()
