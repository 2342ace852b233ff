"""The INVITE session, bytes in and bytes out: as callee (UAS) captured requests go to a real endpoint on a
loopback UDP socket and the test reads what comes back; as caller (UAC) the test answers our INVITE. The session's owner is a recorder in place of the
call leg (the :class:`SessionOwner` contract), so no RTP is involved."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import cast

import pytest
from net_helpers import free_port

from telephony.config import SipConfig, TrunkConfig
from telephony.sdp import Negotiated
from telephony.sip.auth import DigestVerifier, authorization
from telephony.sip.endpoint import Endpoint
from telephony.sip.invite import DialError, IncomingCall, InviteLayer, InviteSession
from telephony.sip.message import SipRequest, SipResponse, make_response, parse_message
from telephony.sip.transaction import Timers
from telephony.sip.transport import Peer

OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         "a=fmtp:101 0-16\r\na={direction}\r\n")

# An INVITE as a softphone sends it (captured from baresip, addresses rewritten to the test's).
INVITE = (
    "INVITE sip:bot@127.0.0.1:{bot} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{branch};rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: \"Alice\" <sip:alice@127.0.0.1>;tag=a1\r\n"
    "To: <sip:bot@127.0.0.1>\r\n"
    "Call-ID: {call_id}\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:alice@127.0.0.1:{me}>\r\n"
    "User-Agent: baresip v1.0.0 (x86_64/linux)\r\n"
    "Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE,REFER\r\n"
    "{content_type}"
    "Content-Length: {length}\r\n\r\n{body}"
)


def in_dialog(method: str, *, bot: int, me: int, branch: str, call_id: str, to_tag: str, cseq: int,
              headers: str = "", body: str = "") -> bytes:
    return (f"{method} sip:bot@127.0.0.1:{bot} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: \"Alice\" <sip:alice@127.0.0.1>;tag=a1\r\n"
            f"To: <sip:bot@127.0.0.1>;tag={to_tag}\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:alice@127.0.0.1:{me}>\r\n"
            f"{headers}Content-Length: {len(body.encode())}\r\n\r\n{body}").encode()


class Recorder:
    """Stands in for the call leg: records what the session tells its owner."""

    def __init__(self) -> None:
        self.media: list[Negotiated] = []
        self.answered = 0
        self.keys: list[str] = []
        self.end_reason = ""
        self.ended = asyncio.Event()
        self.negotiated = asyncio.Event()

    def media_negotiated(self, negotiated: Negotiated) -> None:
        self.media.append(negotiated)
        self.negotiated.set()

    def session_answered(self) -> None:
        self.answered += 1

    async def session_ended(self, reason: str) -> None:
        self.end_reason = reason
        self.ended.set()

    def session_dtmf(self, key: str) -> None:
        self.keys.append(key)


class Phone(asyncio.DatagramProtocol):
    """The peer: a plain UDP socket that sends captured requests and collects what the endpoint sends."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[SipRequest | SipResponse] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.inbox.put_nowait(parse_message(data))

    async def next(self) -> SipRequest | SipResponse:
        return await asyncio.wait_for(self.inbox.get(), 5)

    async def response(self, method: str = "INVITE") -> SipResponse:
        """The next response to ``method``, past retransmissions of our INVITE's 200 (its ACK may cross them)."""
        while True:
            msg = await self.next()
            assert isinstance(msg, SipResponse), msg
            if msg.cseq.method == method:
                return msg
            assert msg.cseq.method == "INVITE" and msg.status == 200, msg

    async def request(self) -> SipRequest:
        """The next request the endpoint sends, past retransmissions of our INVITE's 200."""
        while True:
            msg = await self.next()
            if isinstance(msg, SipRequest):
                return msg
            assert msg.cseq.method == "INVITE" and msg.status == 200, msg


class Bench:
    """A real endpoint with an INVITE layer on loopback, one phone socket, a recorder per incoming session."""

    def __init__(self, phone: Phone, endpoint: Endpoint, bot_port: int, me: int):
        self.phone, self.endpoint, self.bot, self.me = phone, endpoint, bot_port, me
        self.sessions: asyncio.Queue[tuple[InviteSession, Recorder, IncomingCall]] = asyncio.Queue()
        self.layer = InviteLayer(endpoint, self._incoming)

    def _incoming(self, session: InviteSession, call: IncomingCall) -> None:
        owner = Recorder()
        session.attach(owner)
        self.sessions.put_nowait((session, owner, call))

    def send(self, data: bytes) -> None:
        assert self.phone.transport is not None
        self.phone.transport.sendto(data, ("127.0.0.1", self.bot))

    def invite(self, call_id: str, branch: str = "inv1", body: str | None = OFFER.format(direction="sendrecv")) \
            -> bytes:
        data = INVITE.format(bot=self.bot, me=self.me, branch=branch, call_id=call_id,
                             content_type="Content-Type: application/sdp\r\n" if body else "",
                             length=len((body or "").encode()), body=body or "").encode()
        self.send(data)
        return data

    async def hangup(self, session: InviteSession) -> SipRequest:
        """Hang up from our side; the phone answers the BYE."""
        task = asyncio.create_task(session.hangup())
        bye = await self.phone.request()
        assert bye.method == "BYE" and bye.call_id == session.call_id
        self.send(make_response(bye, 200).to_bytes())
        await asyncio.wait_for(task, 5)
        return bye

    async def ringing(self, call_id: str) -> tuple[InviteSession, Recorder, IncomingCall, SipResponse]:
        """Send an INVITE with an offer; the session rings: 100 then 180 with our tag."""
        self.invite(call_id)
        assert (await self.phone.response()).status == 100
        session, owner, call = await asyncio.wait_for(self.sessions.get(), 5)
        assert await session.ring("127.0.0.1", 41000, ("PCMU", "PCMA"))
        ringing = await self.phone.response()
        assert ringing.status == 180
        return session, owner, call, ringing


def run(test: Callable[[Bench], Awaitable[None]], timers: Timers | None = None,
        trunks: list[TrunkConfig] | None = None, **sip: object) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        bot_port = free_port()
        config = SipConfig(listen_udp=f"127.0.0.1:{bot_port}", listen_tcp=None, **sip)  # type: ignore[arg-type]
        endpoint = Endpoint(config, trunks or [], timers)
        await endpoint.start()
        transport, phone = await loop.create_datagram_endpoint(Phone, local_addr=("127.0.0.1", 0),
                                                               family=socket.AF_INET)
        try:
            await test(Bench(phone, endpoint, bot_port, transport.get_extra_info("sockname")[1]))
        finally:
            transport.close()
            await endpoint.close()

    asyncio.run(main())


def test_answer_ack_and_remote_bye() -> None:
    """INVITE -> 100, 180, 200 with our answer; the ACK stops the 200; BYE -> 200 and the session ends."""
    async def scenario(b: Bench) -> None:
        session, owner, call, ringing = await b.ringing("uas-1")
        assert call.caller == "alice" and call.caller_name == "Alice" and call.dialled == "bot"
        tag = ringing.to_addr.tag
        assert tag and ringing.headers.get("Contact")
        assert len(owner.media) == 1 and owner.media[0].codec.name == "PCMU" and owner.media[0].remote_port == 40000
        session.answer()
        ok = await b.phone.response()
        assert ok.status == 200 and ok.to_addr.tag == tag and b"m=audio 41000 RTP/AVP 0" in ok.body
        # Finding 6: answered, but not established until the ACK confirms the caller is there.
        assert owner.answered == 0 and session.state == "answered" and not session.established
        b.send(in_dialog("ACK", bot=b.bot, me=b.me, branch="ack1", call_id="uas-1", to_tag=tag, cseq=1))
        b.send(in_dialog("BYE", bot=b.bot, me=b.me, branch="bye1", call_id="uas-1", to_tag=tag, cseq=2))
        assert (await b.phone.response("BYE")).status == 200
        await asyncio.wait_for(owner.ended.wait(), 5)
        assert owner.answered == 1 and session.established
        assert owner.end_reason == "remote hangup" and session.state == "ended"
        assert "uas-1" not in b.layer.sessions

    run(scenario)


def test_cancel_before_answer_gives_487() -> None:
    """CANCEL while ringing: 200 to the CANCEL and 487 to the INVITE, both with the 180's tag."""
    async def scenario(b: Bench) -> None:
        session, owner, _, ringing = await b.ringing("uas-2")
        b.send(in_dialog("CANCEL", bot=b.bot, me=b.me, branch="inv1", call_id="uas-2", to_tag="", cseq=1)
               .replace(b";tag=\r\n", b"\r\n"))
        first, second = await b.phone.next(), await b.phone.next()
        assert isinstance(first, SipResponse) and isinstance(second, SipResponse)
        by_method = {r.cseq.method: r for r in (first, second)}
        assert by_method["CANCEL"].status == 200 and by_method["INVITE"].status == 487
        assert by_method["INVITE"].to_addr.tag == ringing.to_addr.tag == by_method["CANCEL"].to_addr.tag
        await asyncio.wait_for(owner.ended.wait(), 5)
        assert owner.end_reason == "cancelled" and owner.answered == 0

    run(scenario)


def test_no_ack_hangs_up_with_bye() -> None:
    """Our 200 is retransmitted until its ACK; without one the session gives up and sends BYE."""
    async def scenario(b: Bench) -> None:
        session, owner, _, ringing = await b.ringing("uas-3")
        session.answer()
        retransmits = 0
        while True:
            msg = await b.phone.next()
            if isinstance(msg, SipResponse):
                assert msg.status == 200 and msg.cseq.method == "INVITE"
                retransmits += 1
                continue
            assert msg.method == "BYE" and msg.call_id == "uas-3" and msg.from_addr.tag == ringing.to_addr.tag
            b.send(make_response(msg, 200).to_bytes())
            break
        assert retransmits >= 3
        await asyncio.wait_for(owner.ended.wait(), 5)
        assert owner.end_reason == "local hangup"

    run(scenario, Timers(t1=0.02, t2=0.08, t4=0.1))


def test_in_dialog_requests() -> None:
    """INFO with a key reaches the owner; an incoming REFER gets 403; a re-INVITE with sendonly puts us on
    hold and is answered recvonly; a request for an unknown dialog gets 481; an old CSeq gets 500."""
    async def scenario(b: Bench) -> None:
        session, owner, _, ringing = await b.ringing("uas-4")
        tag = ringing.to_addr.tag
        assert tag is not None
        session.answer()
        assert (await b.phone.response()).status == 200
        b.send(in_dialog("ACK", bot=b.bot, me=b.me, branch="ack1", call_id="uas-4", to_tag=tag, cseq=1))

        def send(method: str, cseq: int, headers: str = "", body: str = "", call_id: str = "uas-4") -> None:
            b.send(in_dialog(method, bot=b.bot, me=b.me, branch=f"{method.lower()}{cseq}", call_id=call_id,
                             to_tag=tag, cseq=cseq, headers=headers, body=body))

        send("INFO", 2, "Content-Type: application/dtmf-relay\r\n", "Signal=5\r\nDuration=160\r\n")
        assert (await b.phone.response("INFO")).status == 200
        assert owner.keys == ["5"]
        send("REFER", 3, "Refer-To: <sip:carol@127.0.0.1>\r\n")
        refused = await b.phone.response("REFER")
        assert refused.status == 403 and refused.reason == "Transfer Not Allowed"
        send("INVITE", 4, "Content-Type: application/sdp\r\n", OFFER.format(direction="sendonly"))
        held = await b.phone.response()
        assert held.status == 200 and b"a=recvonly" in held.body
        assert session.remote_hold and owner.media[-1].remote_direction == "sendonly"
        send("ACK", 4)
        send("BYE", 5, call_id="no-such-call")
        assert (await b.phone.response("BYE")).status == 481
        send("OPTIONS", 3)
        assert (await b.phone.response("OPTIONS")).status == 500
        bye = await b.hangup(session)
        assert bye.headers.get("To") is not None and bye.to_addr.tag == "a1"
        await asyncio.wait_for(owner.ended.wait(), 5)
        assert owner.end_reason == "local hangup"

    run(scenario)


def test_late_offer_answered_in_ack() -> None:
    """An INVITE without SDP gets our offer in the 200; the answer in the ACK sets up the media."""
    async def scenario(b: Bench) -> None:
        b.invite("uas-5", body=None)
        assert (await b.phone.response()).status == 100
        session, owner, _ = await asyncio.wait_for(b.sessions.get(), 5)
        assert await session.ring("127.0.0.1", 41002, ("PCMA",))
        tag = (await b.phone.response()).to_addr.tag
        assert tag is not None and owner.media == []
        session.answer()
        ok = await b.phone.response()
        assert ok.status == 200 and b"m=audio 41002 RTP/AVP 8" in ok.body
        answer_sdp = OFFER.format(direction="sendrecv").replace("RTP/AVP 0 101", "RTP/AVP 8 101") \
            .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000")
        b.send(in_dialog("ACK", bot=b.bot, me=b.me, branch="ack1", call_id="uas-5", to_tag=tag, cseq=1,
                         headers="Content-Type: application/sdp\r\n", body=answer_sdp))
        await asyncio.wait_for(owner.negotiated.wait(), 5)
        assert owner.media[0].codec.name == "PCMA" and owner.media[0].remote_port == 40000
        await b.hangup(session)

    run(scenario)


ANSWER = OFFER.format(direction="sendrecv")


def test_outbound_invite_with_digest_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our INVITE through a trunk: a 407 is acknowledged and answered with credentials (CSeq 2); the 2xx is
    acknowledged end to end and the answer's media reaches the owner."""
    monkeypatch.setenv("TRUNK_PW", "secret")
    trunk = TrunkConfig(name="pbx", host="127.0.0.1", username="bot", password_env="TRUNK_PW")
    verifier = DigestVerifier("pbx", {"bot": "secret"})

    async def scenario(b: Bench) -> None:
        trunk_at = trunk.model_copy(update={"port": b.me})
        session, from_hdr = b.layer.outgoing(Peer("UDP", "127.0.0.1", b.me), "bot", "127.0.0.1")
        owner = Recorder()
        session.attach(owner)
        dialing = asyncio.create_task(session.invite(f"sip:5550100@127.0.0.1:{b.me}", from_hdr, 41004,
                                                     trunk_at, 10))
        first = await b.phone.request()
        assert first.method == "INVITE" and first.cseq.number == 1 and b"m=audio 41004" in first.body
        b.send(make_response(first, 407, to_tag="p1", extra=[("Proxy-Authenticate", verifier.challenge("127.0.0.1"))])
               .to_bytes())
        ack = await b.phone.request()
        assert ack.method == "ACK" and ack.top_via.branch == first.top_via.branch and ack.to_addr.tag == "p1"
        second = await b.phone.request()
        assert second.method == "INVITE" and second.cseq.number == 2 and second.call_id == first.call_id
        assert verifier.verify(second.headers.get("Proxy-Authorization"), "INVITE", second.uri, "127.0.0.1") == "bot"
        b.send(make_response(second, 180, to_tag="p2").to_bytes())
        b.send(make_response(second, 200, to_tag="p2", body=ANSWER.encode(), extra=[
            ("Contact", f"<sip:5550100@127.0.0.1:{b.me}>"), ("Content-Type", "application/sdp")]).to_bytes())
        await asyncio.wait_for(dialing, 5)
        ack2 = await b.phone.request()
        assert ack2.method == "ACK" and ack2.cseq.number == 2 and ack2.to_addr.tag == "p2"
        assert ack2.top_via.branch != second.top_via.branch  # the 2xx ACK is a transaction of its own
        assert session.state == "answered" and owner.answered == 1
        assert owner.media[0].remote_port == 40000 and owner.media[0].dtmf_pt == 101
        bye = await b.hangup(session)
        assert bye.cseq.number == 3 and bye.uri == f"sip:5550100@127.0.0.1:{b.me}"

    run(scenario)


def test_outbound_ring_timeout_cancels() -> None:
    """Nobody answers in the ring timeout: CANCEL on the INVITE's branch, the 487 is acknowledged, DialError 408."""
    async def scenario(b: Bench) -> None:
        session, from_hdr = b.layer.outgoing(Peer("UDP", "127.0.0.1", b.me), "voicebot", "127.0.0.1")
        owner = Recorder()
        session.attach(owner)
        dialing = asyncio.create_task(session.invite(f"sip:agent@127.0.0.1:{b.me}", from_hdr, 41006, None, 0.3))
        invite = await b.phone.request()
        b.send(make_response(invite, 180, to_tag="r1").to_bytes())
        cancel = await b.phone.request()
        assert cancel.method == "CANCEL" and cancel.top_via.branch == invite.top_via.branch
        assert cancel.cseq.number == invite.cseq.number
        b.send(make_response(cancel, 200, to_tag="r1").to_bytes())
        b.send(make_response(invite, 487, to_tag="r1").to_bytes())
        ack = await b.phone.request()
        assert ack.method == "ACK" and ack.top_via.branch == invite.top_via.branch
        with pytest.raises(DialError) as info:
            await asyncio.wait_for(dialing, 5)
        assert info.value.status == 408
        assert owner.end_reason == "dial failed" and session.call_id not in b.layer.sessions

    run(scenario)


SPOOF_FROM = 'From: "<sip:+15551230002@127.0.0.1>" <sip:+15550009999@127.0.0.1>;tag=a1\r\n'
PAI = "P-Asserted-Identity: <sip:+15551230002@127.0.0.1>\r\n"


def identity_invite(b: Bench, call_id: str, branch: str, extra: str = "") -> bytes:
    """An INVITE whose display name carries someone else's URI, with a P-Asserted-Identity for that someone."""
    body = OFFER.format(direction="sendrecv")
    data = INVITE.format(bot=b.bot, me=b.me, branch=branch, call_id=call_id,
                         content_type="Content-Type: application/sdp\r\n" + PAI + extra,
                         length=len(body.encode()), body=body)
    return data.replace('From: "Alice" <sip:alice@127.0.0.1>;tag=a1\r\n', SPOOF_FROM).encode()


def test_display_name_and_untrusted_assertion_do_not_set_the_caller() -> None:
    """Finding 5 (failed before: the caller was +15551230002, the URI quoted in the display name): a test call
    from loopback comes from no trunk, so its P-Asserted-Identity is ignored and the caller is From's URI."""
    async def scenario(b: Bench) -> None:
        b.send(identity_invite(b, "id-1", "id1"))
        assert (await b.phone.response()).status == 100
        session, _, call = await asyncio.wait_for(b.sessions.get(), 5)
        assert call.caller == "+15550009999" and call.caller_name == "<sip:+15551230002@127.0.0.1>"
        await session.reject(486)

    run(scenario)


@pytest.mark.parametrize(("trunk", "caller"), [
    (TrunkConfig(name="carrier", host="127.0.0.1"), "+15551230002"),
    (TrunkConfig(name="carrier", host="127.0.0.1", trust_asserted_identity=False), "+15550009999"),
])
def test_asserted_identity_from_a_trusted_trunk_address(trunk: TrunkConfig, caller: str) -> None:
    """A trunk recognised by its address asserts the caller (unless told not to be trusted)."""
    async def scenario(b: Bench) -> None:
        b.send(identity_invite(b, "id-2", "id2"))
        assert (await b.phone.response()).status == 100
        session, _, call = await asyncio.wait_for(b.sessions.get(), 5)
        assert call.caller == caller and call.trunk is not None
        await session.reject(486)

    run(scenario, trunks=[trunk])


def test_asserted_identity_is_ignored_from_a_digest_trunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 5 (failed before: PAI was taken from any accepted trunk): a password proves an account, not a
    trust domain, so a caller let in by digest is identified by From, whatever it asserts."""
    monkeypatch.setenv("PBX_PW", "pw")
    trunk = TrunkConfig(name="pbx", host="203.0.113.5", inbound_auth=True, username="pbx", password_env="PBX_PW")

    async def scenario(b: Bench) -> None:
        b.send(identity_invite(b, "id-3", "id3a"))
        challenge = await b.phone.response()
        assert challenge.status == 407
        creds = authorization(challenge.headers.get("Proxy-Authenticate") or "", "pbx", "pw", "INVITE",
                              f"sip:bot@127.0.0.1:{b.bot}")
        b.send(identity_invite(b, "id-3", "id3b", f"Proxy-Authorization: {creds}\r\n"))
        assert (await b.phone.response()).status == 100
        session, _, call = await asyncio.wait_for(b.sessions.get(), 5)
        assert call.trunk is not None and call.trunk.name == "pbx" and call.caller == "+15550009999"
        await session.reject(486)

    run(scenario, trunks=[trunk])


def test_digest_answer_cannot_be_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 8 (failed before: the captured Proxy-Authorization let a second call in, and one computed for
    another Request-URI was accepted): an answer is good for one INVITE to the URI it was computed for."""
    monkeypatch.setenv("PBX_PW", "pw")
    trunk = TrunkConfig(name="pbx", host="203.0.113.5", inbound_auth=True, username="pbx", password_env="PBX_PW")

    async def scenario(b: Bench) -> None:
        b.invite("rp-1", branch="rp1a")
        challenge = (await b.phone.response()).headers.get("Proxy-Authenticate") or ""
        creds = authorization(challenge, "pbx", "pw", "INVITE", f"sip:bot@127.0.0.1:{b.bot}")
        wrong_uri = authorization(challenge, "pbx", "pw", "INVITE", "sip:other@127.0.0.1")

        def with_auth(call_id: str, branch: str, value: str) -> None:
            data = INVITE.format(bot=b.bot, me=b.me, branch=branch, call_id=call_id, content_type="", length=0,
                                 body="").replace("Content-Length", f"Proxy-Authorization: {value}\r\nContent-Length")
            b.send(data.encode())

        with_auth("rp-2", "rp2", wrong_uri)
        assert (await b.phone.response()).status == 403
        with_auth("rp-3", "rp3", creds)
        assert (await b.phone.response()).status == 100
        await asyncio.wait_for(b.sessions.get(), 5)
        with_auth("rp-4", "rp4", creds)  # the same answer again: a replay
        assert (await b.phone.response()).status == 403
        assert b.sessions.empty()

    run(scenario, trunks=[trunk])


def test_outbound_answer_with_unreadable_contact_is_a_dial_error() -> None:
    """A 200 whose Contact does not parse fails the dial with DialError, not an exception from the parser."""
    async def scenario(b: Bench) -> None:
        session, from_hdr = b.layer.outgoing(Peer("UDP", "127.0.0.1", b.me), "voicebot", "127.0.0.1")
        owner = Recorder()
        session.attach(owner)
        dialing = asyncio.create_task(session.invite(f"sip:agent@127.0.0.1:{b.me}", from_hdr, 41008, None, 5))
        invite = await b.phone.request()
        b.send(make_response(invite, 200, to_tag="c1", body=ANSWER.encode(), extra=[
            ("Contact", '"unterminated <sip:agent@127.0.0.1>'), ("Content-Type", "application/sdp")]).to_bytes())
        with pytest.raises(DialError) as info:
            await asyncio.wait_for(dialing, 5)
        assert info.value.status == 502 and owner.end_reason == "dial failed"

    run(scenario)


@pytest.mark.parametrize("first_realm", ["voicebot-cluster", "trunk.test"])
def test_proxied_invite_answers_only_the_fronts_own_challenge_once(monkeypatch: pytest.MonkeyPatch,
                                                                   first_realm: str) -> None:
    """A call through a cluster's SIP front (``outbound_proxy``): the front's 407 (realm voicebot-cluster) is
    answered once with the cluster's secret as the node; a trunk's challenge passed back by the front is never
    answered by the node (the front holds the trunk's password), so the call fails saying what to check."""
    monkeypatch.setenv("CLUSTER_KEY", "cluster-secret")
    monkeypatch.setenv("TRUNK_PW", "trunk-pw")  # the node must not use it: the front answers the trunk
    front_verifier = DigestVerifier("voicebot-cluster", {"n1": "cluster-secret"})
    trunk_verifier = DigestVerifier("trunk.test", {"bot": "trunk-pw"})

    async def scenario(b: Bench) -> None:
        trunk = TrunkConfig(name="carrier", host="192.0.2.10", username="bot", password_env="TRUNK_PW",
                            outbound_proxy=f"127.0.0.1:{b.me}", outbound_proxy_username="n1",
                            outbound_proxy_password_env="CLUSTER_KEY")
        session, from_hdr = b.layer.outgoing(Peer("UDP", "127.0.0.1", b.me), "bot", "127.0.0.1")
        session.attach(Recorder())
        dialing = asyncio.create_task(session.invite("sip:5550100@192.0.2.10", from_hdr, 41006, trunk, 10))
        verifier = front_verifier if first_realm == "voicebot-cluster" else trunk_verifier
        first = await b.phone.request()
        assert first.headers.get("X-Voicebot-Trunk") == "carrier" and first.headers.get("Proxy-Authorization") is None
        b.send(make_response(first, 407, to_tag="f1", extra=[("Proxy-Authenticate", verifier.challenge("127.0.0.1"))])
               .to_bytes())
        assert (await b.phone.request()).method == "ACK"
        if first_realm == "voicebot-cluster":
            second = await b.phone.request()
            assert second.method == "INVITE" and second.cseq.number == 2
            assert front_verifier.verify(second.headers.get("Proxy-Authorization"), "INVITE", second.uri,
                                         "127.0.0.1") == "n1"
            # The trunk refused the front's credentials: its second challenge comes back and is not answered.
            b.send(make_response(second, 407, to_tag="f2", extra=[
                ("Proxy-Authenticate", trunk_verifier.challenge("127.0.0.1"))]).to_bytes())
            assert (await b.phone.request()).method == "ACK"
        with pytest.raises(DialError) as failed:
            await asyncio.wait_for(dialing, 5)
        assert failed.value.status == 407
        assert "did not accept the SIP front's credentials" in failed.value.reason
        assert "check the trunk's username 'bot' and the password in TRUNK_PW" in failed.value.reason
        assert b.phone.inbox.empty()  # no INVITE after the one answer

    run(scenario)
