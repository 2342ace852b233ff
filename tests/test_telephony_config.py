"""The sip: and trunks: sections as an integrator writes them, and what `voicebot config check` reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from telephony.access import AccessPolicy, RateLimiter
from telephony.config import TrunkConfig, check_trunks, split_hostport
from voicebot.config import ConfigError, load_settings
from voicebot.validation import check_settings

GOOD = """
sip:
  listen_udp: 0.0.0.0:5070
  listen_tcp: ""
  public_address: 203.0.113.7
  rtp_port_min: 30000
  rtp_port_max: 30100
trunks:
  - name: asterisk
    host: 10.0.0.5
    register: false
    dids:
      "1000": {greeting: "Welcome to support", flow: order_status, language: en}
  - name: provider
    host: sip.provider.example
    transport: tcp
    username: "4930123"
    password_env: PROVIDER_PW
    register: true
    allowed_ips: [198.51.100.0/24]
"""


def test_good_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDER_PW", "x")
    path = tmp_path / "voicebot.yaml"
    path.write_text(GOOD)
    s = load_settings(path)
    assert s.sip.listen_tcp is None and s.sip.public_address == "203.0.113.7"
    assert s.trunks[0].dids["1000"].flow == "order_status"
    assert s.trunks[1].register_ and s.trunks[1].password == "x"
    assert [p for p in check_settings(s) if p[0].startswith("trunks")] == []


def test_bad_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "voicebot.yaml"
    path.write_text("sip:\n  listen_udp: 'x:99999'\ntrunks:\n  - name: a\n    host: h\n    register: true\n"
                    "  - name: b\n    host: h\n    allowed_ips: [nope]\n    transport: sctp\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    keys = sorted(k for k, _ in info.value.problems)
    assert keys == ["sip.listen_udp", "trunks.0", "trunks.1.allowed_ips", "trunks.1.transport"]


def test_trunk_checks_beyond_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISSING_PW", raising=False)
    trunks = [TrunkConfig(name="a", host="h", username="u", password_env="MISSING_PW", register=True),
              TrunkConfig(name="a", host="h2")]
    assert check_trunks(trunks) == [("trunks.0.password_env", "environment variable MISSING_PW is not set"),
                                    ("trunks.1.name", "duplicate trunk name 'a'")]


def test_hostport() -> None:
    assert split_hostport("[::1]:5070") == ("::1", 5070)
    assert split_hostport("10.0.0.1") == ("10.0.0.1", 5060)
    with pytest.raises(ValueError):
        split_hostport("host:port")


def test_access_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AccessPolicy([]).decide("127.0.0.1", "INVITE", None).action == "accept"
    assert AccessPolicy([]).decide("192.0.2.9", "INVITE", None).action == "reject"
    monkeypatch.setenv("PW", "secret")
    policy = AccessPolicy([TrunkConfig(name="ip", host="10.0.0.5"),
                           TrunkConfig(name="net", host="sip.example", allowed_ips=["198.51.100.0/24"]),
                           TrunkConfig(name="auth", host="pbx", username="pbx", password_env="PW", inbound_auth=True)])
    assert policy.decide("10.0.0.5", "INVITE", None).trunk.name == "ip"  # type: ignore[union-attr]
    assert policy.decide("198.51.100.77", "INVITE", None).trunk.name == "net"  # type: ignore[union-attr]
    assert policy.decide("127.0.0.1", "INVITE", None).action == "challenge"  # loopback is no longer special
    assert policy.decide("192.0.2.1", "INVITE", 'Digest username="pbx", nonce="1.x"').action == "reject"


def test_rate_limiter() -> None:
    now = [0.0]
    limiter = RateLimiter(5, clock=lambda: now[0])
    assert sum(limiter.allow("a") for _ in range(100)) == 10  # the burst
    assert limiter.allow("b")  # per source
    now[0] += 1.0
    assert sum(limiter.allow("a") for _ in range(100)) == 5  # refilled at the rate
