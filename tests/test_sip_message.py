"""SIP message parsing and serialisation with real messages as bytes (RFC 3261 / RFC 4475 style)."""

from __future__ import annotations

import pytest

from telephony.sip.message import (
    Address,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    format_params,
    make_response,
    parse_message,
    parse_params,
)

INVITE = (
    b"INVITE sip:5000@192.0.2.10:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bK776asdhds;rport\r\n"
    b"v: SIP/2.0/UDP 192.0.2.30;branch=z9hG4bKnashds8\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice Smith" <sip:+15551234@trunk.example.com>;tag=1928301774\r\n'
    b"t: <sip:5000@192.0.2.10>\r\n"
    b"i: a84b4c76e66710@pc33.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@192.0.2.20:5062>\r\n"
    b"P-Asserted-Identity: <sip:+15551234@trunk.example.com>\r\n"
    b"Subject: folded\r\n  header line\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\r\nEXTRA"
)


def test_parse_invite_fields() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    assert msg.method == "INVITE" and msg.uri == "sip:5000@192.0.2.10:5060"
    assert [v.branch for v in msg.vias] == ["z9hG4bK776asdhds", "z9hG4bKnashds8"]
    assert msg.top_via.sent_by == "192.0.2.20:5062" and "rport" in msg.top_via.params
    assert msg.call_id == "a84b4c76e66710@pc33.example.com"
    assert msg.cseq.number == 314159 and msg.cseq.method == "INVITE"
    assert msg.from_addr.tag == "1928301774" and msg.from_addr.display == "Alice Smith"
    assert msg.from_addr.user == "+15551234"
    assert msg.to_addr.tag is None
    assert msg.headers.get("subject") == "folded header line"
    # Bytes after Content-Length belong to no one (RFC 3261 §18.3).
    assert msg.body == b"v=0\r"
    assert msg.transaction_key == ("z9hG4bK776asdhds", "192.0.2.20:5062", "INVITE")


def test_serialise_round_trip() -> None:
    msg = parse_message(INVITE)
    again = parse_message(msg.to_bytes())
    assert isinstance(again, SipRequest)
    assert again.headers.items() == msg.headers.items()
    assert again.body == msg.body
    assert b"Content-Length: 4\r\n\r\n" in msg.to_bytes()


def test_response_copies_headers_and_adds_to_tag() -> None:
    req = parse_message(INVITE)
    assert isinstance(req, SipRequest)
    resp = parse_message(make_response(req, 180, to_tag="abc").to_bytes())
    assert isinstance(resp, SipResponse)
    assert resp.status == 180 and resp.reason == "Ringing"
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")
    assert resp.to_addr.tag == "abc" and resp.from_addr.tag == "1928301774"
    assert parse_message(make_response(req, 100, to_tag="abc").to_bytes()).to_addr.tag is None


def test_ack_matches_invite_transaction() -> None:
    ack = INVITE.replace(b"INVITE sip", b"ACK sip").replace(b"314159 INVITE", b"314159 ACK")
    msg = parse_message(ack)
    assert isinstance(msg, SipRequest)
    assert msg.transaction_key == parse_message(INVITE).transaction_key


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"\x00\xff\x13garbage\r\n\r\n", None),
        (b"", None),
        (b"HELLO\r\n\r\n", None),
        (INVITE.replace(b"Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bK776asdhds;rport\r\nv: SIP/2.0/UDP "
                        b"192.0.2.30;branch=z9hG4bKnashds8\r\n", b""), None),  # no Via: nowhere to answer
        (INVITE.replace(b"i: a84b4c76e66710@pc33.example.com\r\n", b""), 400),  # no Call-ID
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"), 400),  # CSeq method mismatch
        (INVITE.replace(b"CSeq: 314159 INVITE", b"CSeq: abc INVITE"), 400),
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: 999"), 400),  # truncated body
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: -1"), 400),
        (INVITE.replace(b" SIP/2.0\r\nVia", b" SIP/7.0\r\nVia", 1), 505),
        (INVITE.replace(b"Max-Forwards: 70", b"X-Big: " + b"a" * 5000), None),  # huge header line
        (INVITE.replace(b"Max-Forwards: 70", b"\r\n".join(b"X-H%d: 1" % i for i in range(200))), None),
        (INVITE.replace(b"Max-Forwards: 70", b"no colon here"), None),
        (INVITE[:40], None),  # truncated before any Via
        (INVITE[:60], 400),  # truncated after a usable Via: answerable
        (b"SIP/2.0 2000 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n", None),
        (INVITE.replace(b"From: \"Alice", b"From: <sip:x@y;tag=1\r\nX-From: \"Alice"), 400),  # unclosed <
    ],
)
def test_malformed_messages(data: bytes, status: int | None) -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert info.value.status == status


def test_parse_error_keeps_partial_request_for_the_reply() -> None:
    with pytest.raises(SipParseError) as info:
        parse_message(INVITE.replace(b"CSeq: 314159 INVITE\r\n", b""))
    assert info.value.partial is not None
    reply = make_response(info.value.partial, 400)
    assert b"Call-ID: a84b4c76e66710@pc33.example.com" in reply.to_bytes()


def test_uri_address_via() -> None:
    uri = SipUri.parse("sip:+4930123@[2001:db8::1]:5070;transport=tcp?X=1")
    assert (uri.user, uri.host, uri.port, uri.params) == ("+4930123", "[2001:db8::1]", 5070, {"transport": "tcp"})
    assert str(SipUri.parse("sip:bot@127.0.0.1:5060;lr")) == "sip:bot@127.0.0.1:5060;lr"
    with pytest.raises(ValueError):
        SipUri.parse("http://example.com")
    addr = Address.parse("sip:bob@example.com;tag=88")
    assert addr.uri == "sip:bob@example.com" and addr.tag == "88"
    assert Address.parse("<tel:+15551234>").user == "+15551234"
    via = Via.parse("SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bK1;received=192.0.2.1")
    assert via.transport == "TCP" and via.port == 5061 and via.params["received"] == "192.0.2.1"


def test_top_via_records_the_real_source() -> None:
    from telephony.sip.endpoint import _stamp_via
    from telephony.sip.transport import Peer

    req = parse_message(INVITE)
    assert isinstance(req, SipRequest)
    _stamp_via(req, Peer("UDP", "203.0.113.9", 40000))  # the caller is behind NAT
    resp = parse_message(make_response(req, 200, to_tag="x").to_bytes())
    top, second = resp.vias
    assert top.params["rport"] == "40000" and top.params["received"] == "203.0.113.9"
    assert top.branch == "z9hG4bK776asdhds" and second.branch == "z9hG4bKnashds8"
    assert req.transaction_key == ("z9hG4bK776asdhds", "192.0.2.20:5062", "INVITE")  # matching unchanged


@pytest.mark.parametrize(("text", "uri", "display", "tag"), [
    # Finding 5: a URI inside the quoted display name is text, not the address.
    ('"<sip:+15551230002@x>" <sip:+15550009999@x>;tag=1', "sip:+15550009999@x", "<sip:+15551230002@x>", "1"),
    (r'"Al \"the <boss>\" Smith" <sip:al@x>;tag=2', "sip:al@x", 'Al "the <boss>" Smith', "2"),
    (r'"back\\slash" <sip:b@x>', "sip:b@x", "back\\slash", None),
    ("Alice  Smith <sip:alice@x>;tag=3", "sip:alice@x", "Alice Smith", "3"),
    ("<sip:bare@x;lr>;tag=4", "sip:bare@x;lr", "", "4"),
    ("sip:spec@x;tag=5", "sip:spec@x", "", "5"),
])
def test_name_addr_per_rfc3261(text: str, uri: str, display: str, tag: str | None) -> None:
    addr = Address.parse(text)
    assert (addr.uri, addr.display, addr.tag) == (uri, display, tag)
    assert Address.parse(str(addr)) == addr  # what we write reads back the same


@pytest.mark.parametrize("text", ['"unterminated <sip:a@x>', '"Name" sip:a@x', "Bad<Name <sip:a@x>",
                                  "<sip:a@x", '"x" <sip:a@x> junk'])
def test_malformed_name_addr_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Address.parse(text)


def test_list_split_honours_escaped_quotes() -> None:
    from telephony.sip.message import split_list

    assert split_list(r'"a\", <b" <sip:a@x>, <sip:b@x>') == [r'"a\", <b" <sip:a@x>', "<sip:b@x>"]


def test_params_format_back_to_what_was_parsed() -> None:
    params = parse_params(";branch=z9hG4bK776asdhds;rport;Transport=TCP")
    assert params == {"branch": "z9hG4bK776asdhds", "rport": "", "transport": "TCP"}
    assert format_params(params) == ";branch=z9hG4bK776asdhds;rport;transport=TCP"
    assert format_params({}) == ""
