"""The registrar's answer to our REGISTER, as bytes: how long the registration was granted for."""

from __future__ import annotations

from telephony.sip.message import SipResponse, parse_message
from telephony.sip.registration import _granted_expires

OK = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKreg1\r\n"
      b"From: <sip:bot@pbx>;tag=r1\r\nTo: <sip:bot@pbx>;tag=r2\r\nCall-ID: reg-1\r\nCSeq: 2 REGISTER\r\n"
      b"%s\r\nContent-Length: 0\r\n\r\n")


def granted(headers: bytes) -> int:
    resp = parse_message(OK % headers)
    assert isinstance(resp, SipResponse)
    return _granted_expires(resp, 300)


def test_expires_from_contact_then_header_then_request() -> None:
    assert granted(b"Contact: <sip:bot@127.0.0.1:5060>;expires=60\r\nExpires: 120") == 60
    assert granted(b"Expires: 120") == 120
    assert granted(b"X-Nothing: 1") == 300


def test_unreadable_contact_falls_back_to_expires() -> None:
    # A quoted display name that never ends is refused by the name-addr parser: not a crash of the refresh loop.
    assert granted(b'Contact: "unterminated <sip:bot@127.0.0.1>;expires=60\r\nExpires: 120') == 120
