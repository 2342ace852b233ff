"""A browser caller's number comes only from a token the company's own site signed: an unsigned caller_id is
ignored (the caller is anonymous), a forged or expired token is a 400 naming why, and `voicebot token caller`
mints a token the server accepts."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from voicebot.config import Settings
from voicebot.runtime import Runtime
from voicebot.server import app as app_module
from voicebot.server.app import _parse_offer, create_app
from voicebot.server.caller_token import CallerTokenError, secret_from_env, sign, verify

SECRET = b"shared-with-the-company-site"
JOHN = "+15551230001"
SDP = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def offer(**request_data: object) -> dict:
    return {"sdp": SDP, "type": "offer", "request_data": request_data}


def test_sign_and_verify() -> None:
    token = sign(JOHN, SECRET, ttl_s=300, now=1000)
    assert verify(token, SECRET, now=1299) == JOHN
    assert "|" not in token and "+" not in token and "/" not in token  # fits a URL query unescaped
    with pytest.raises(CallerTokenError, match="expired"):
        verify(token, SECRET, now=1301)
    with pytest.raises(CallerTokenError, match="signature"):
        verify(token, b"another secret", now=1000)
    payload, mac = token.split(".")
    forged = sign("+15559999999", b"attacker's own secret", now=1000).split(".")[0] + "." + mac
    with pytest.raises(CallerTokenError, match="signature"):
        verify(forged, SECRET, now=1000)
    for junk in ("", "abc", "a.b.c", "!!!.###", JOHN):
        with pytest.raises(CallerTokenError, match="malformed|signature"):
            verify(junk, SECRET, now=1000)
    with pytest.raises(CallerTokenError, match="caller ID"):
        sign("", SECRET)
    with pytest.raises(CallerTokenError, match="caller ID"):
        sign("1" * 65, SECRET)


def test_secret_comes_from_the_named_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert secret_from_env(None) is None
    monkeypatch.delenv("VOICEBOT_TEST_CALLER_SECRET", raising=False)
    with pytest.raises(CallerTokenError, match="VOICEBOT_TEST_CALLER_SECRET.*not set"):
        secret_from_env("VOICEBOT_TEST_CALLER_SECRET")
    monkeypatch.setenv("VOICEBOT_TEST_CALLER_SECRET", "s3")
    assert secret_from_env("VOICEBOT_TEST_CALLER_SECRET") == b"s3"


def test_unsigned_caller_id_is_ignored_and_logged_once(caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "_unsigned_warned", False)
    with caplog.at_level(logging.WARNING, logger="voicebot.server.app"):
        for secret in (None, SECRET, SECRET):
            _request, caller_id = _parse_offer(offer(caller_id=JOHN), secret)
            assert caller_id is None  # anyone could claim John's number: the call goes on anonymously
    assert len([r for r in caller_id_warnings(caplog)]) == 1
    assert _parse_offer(offer(caller_token=sign(JOHN, SECRET)), SECRET)[1] == JOHN
    # A token wins over an unsigned caller_id sent next to it.
    assert _parse_offer(offer(caller_id="+15550000000", caller_token=sign(JOHN, SECRET)), SECRET)[1] == JOHN
    assert _parse_offer({"sdp": SDP, "type": "offer"}, SECRET)[1] is None


def caller_id_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "unsigned" in r.getMessage()]


# The tokens are minted when the test runs, not when it is collected: a token minted at collection names the second
# it was made in, so the two xdist workers, collecting a second apart, saw different test ids (and one minted minutes
# before its test could expire before it). Each case has a fixed id.
@pytest.mark.parametrize(
    ("mint", "secret", "message"),
    [
        pytest.param(lambda: sign(JOHN, SECRET, ttl_s=1, now=0), SECRET, "expired", id="expired"),
        pytest.param(lambda: sign(JOHN, b"wrong", ttl_s=300), SECRET, "signature", id="wrong-secret"),
        pytest.param(lambda: "nonsense", SECRET, "malformed", id="not-a-token"),
        pytest.param(lambda: 5, SECRET, "malformed", id="not-a-string"),
        pytest.param(lambda: sign(JOHN, SECRET), None, "does not accept caller tokens", id="tokens-off"),
    ],
)
def test_bad_token_is_a_400_naming_why(mint: Callable[[], object], secret: bytes | None, message: str) -> None:
    with pytest.raises(HTTPException) as exc:
        _parse_offer(offer(caller_token=mint()), secret)
    assert exc.value.status_code == 400 and message in exc.value.detail and "caller_token" in exc.value.detail


def test_server_checks_tokens_with_the_configured_secret(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEBOT_TEST_CALLER_SECRET", SECRET.decode())
    settings = Settings()  # type: ignore[call-arg]
    settings.database.url = f"sqlite:///{tmp_path / 'voicebot.db'}"
    settings.webrtc.caller_token_secret_env = "VOICEBOT_TEST_CALLER_SECRET"
    runtime = Runtime.load(settings, warm_up=False)
    try:
        with TestClient(create_app(runtime)) as client:
            expired = sign(JOHN, SECRET, ttl_s=1, now=0)
            res = client.post("/api/offer", json=offer(caller_token=expired))
            assert res.status_code == 400 and "expired" in res.json()["detail"]
            forged = sign(JOHN, b"guessed", ttl_s=300)
            res = client.post("/api/offer", json=offer(caller_token=forged))
            assert res.status_code == 400 and "signature" in res.json()["detail"]
    finally:
        runtime.close()


def test_token_cli_mints_what_the_server_accepts(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "voicebot.yaml"
    config.write_text("webrtc:\n  caller_token_secret_env: VOICEBOT_TEST_CALLER_SECRET\n")
    monkeypatch.setenv("VOICEBOT_TEST_CALLER_SECRET", SECRET.decode())
    cmd = [sys.executable, "-m", "voicebot", "token", "caller", JOHN, "--ttl", "60", "--config", str(config)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert verify(done.stdout.strip(), SECRET) == JOHN
    monkeypatch.delenv("VOICEBOT_TEST_CALLER_SECRET")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "VOICEBOT_TEST_CALLER_SECRET" in done.stderr and "Traceback" not in done.stderr
