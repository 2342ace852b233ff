"""Reproductions of the penetration test's SIP/RTP findings 6 and 7 against a real user agent on loopback: raw
INVITEs from a UDP socket that never acknowledges, SDP naming a victim's address or a host name, a genuine caller
from another loopback address (127.0.0.2) with the product's own user agent."""

from __future__ import annotations

import asyncio
import socket

import pytest
from net_helpers import free_port, rtp_ports

from telephony.call import CallLeg
from telephony.config import SipConfig
from telephony.sip.message import SipRequest, SipResponse, make_response, parse_message
from telephony.sip.transaction import Timers
from telephony.sip.ua import UserAgent


def invite(bot_port: int, me: int, n: int, sdp_host: str, sdp_port: int) -> bytes:
    body = (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 {sdp_host}\r\nt=0 0\r\n"
            f"m=audio {sdp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    return (f"INVITE sip:bot@127.0.0.1:{bot_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKatk{n};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:mallory@127.0.0.1>;tag=m{n}\r\n"
            "To: <sip:bot@127.0.0.1>\r\n"
            f"Call-ID: attack-{n}\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:mallory@127.0.0.1:{me}>\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def ack_for(ok: SipResponse, bot_port: int, me: int) -> bytes:
    return (f"ACK sip:bot@127.0.0.1:{bot_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKack{ok.call_id};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: {ok.headers.get('From')}\r\nTo: {ok.headers.get('To')}\r\n"
            f"Call-ID: {ok.call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()


class Mallory(asyncio.DatagramProtocol):
    """The attacker's SIP socket: collects responses, answers the bot's BYEs with 200."""

    def __init__(self) -> None:
        self.responses: asyncio.Queue[SipResponse] = asyncio.Queue()
        self.byes: asyncio.Queue[SipRequest] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        msg = parse_message(data)
        if isinstance(msg, SipResponse):
            self.responses.put_nowait(msg)
        elif msg.method == "BYE":
            assert self.transport is not None
            self.transport.sendto(make_response(msg, 200).to_bytes(), addr)
            self.byes.put_nowait(msg)

    async def final(self) -> SipResponse:
        while True:
            resp = await asyncio.wait_for(self.responses.get(), 5)
            if resp.status >= 200:
                return resp


class Victim(asyncio.DatagramProtocol):
    """Someone's UDP port named in the attacker's SDP: counts what the bot sends there."""

    def __init__(self) -> None:
        self.packets = 0
        self.first = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.packets += 1
        self.first.set()


async def answer_and_wait(leg: CallLeg) -> None:
    await leg.answer()
    await leg.wait_ended()


def listening(ua: UserAgent) -> int:
    """The UDP port ``ua`` listens on for SIP."""
    assert ua.transport.udp_address is not None
    return ua.transport.udp_address[1]


def bot_config(**extra: object) -> SipConfig:
    return SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, **rtp_ports(50),
                     **extra)  # type: ignore[arg-type]


def test_no_media_before_ack_and_none_after_the_peer_stays_silent() -> None:
    """Finding 7 (failed before: the victim got RTP while the 200 OK was still unacknowledged) and finding 6's
    no-media rule: nothing is sent until the ACK; then a call whose peer sends no RTP ends ("no media")."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        legs: list[CallLeg] = []

        async def bot(leg: CallLeg) -> None:
            legs.append(leg)
            await answer_and_wait(leg)

        server = UserAgent(bot_config(no_media_timeout_s=0.6), on_call=bot,
                           timers=Timers(t1=0.05, t2=0.2, t4=0.25))
        await server.start()
        bot_port = listening(server)
        sip, mallory = await loop.create_datagram_endpoint(Mallory, local_addr=("127.0.0.1", 0),
                                                           family=socket.AF_INET)
        media, victim = await loop.create_datagram_endpoint(Victim, local_addr=("127.0.0.1", 0),
                                                            family=socket.AF_INET)
        me, victim_port = sip.get_extra_info("sockname")[1], media.get_extra_info("sockname")[1]
        try:
            sip.sendto(invite(bot_port, me, 1, "127.0.0.1", victim_port), ("127.0.0.1", bot_port))
            ok = await mallory.final()
            assert ok.status == 200
            for _ in range(3):  # three retransmissions of the 200: the bot is waiting for the ACK
                again = await asyncio.wait_for(mallory.responses.get(), 5)
                assert again.status == 200
            assert victim.packets == 0
            assert legs[0].state == "answered" and not legs[0].answered.is_set()
            sip.sendto(ack_for(ok, bot_port, me), ("127.0.0.1", bot_port))
            await asyncio.wait_for(victim.first.wait(), 5)  # acknowledged: media flows
            await asyncio.wait_for(legs[0].answered.wait(), 5)
            bye = await asyncio.wait_for(mallory.byes.get(), 10)  # the victim never answers with RTP
            assert bye.call_id == "attack-1"
            await asyncio.wait_for(legs[0].ended.wait(), 5)
            assert legs[0].end_reason == "no media"
        finally:
            sip.close()
            media.close()
            await server.stop()

    asyncio.run(main())


def test_hostname_in_sdp_connection_is_refused() -> None:
    """Finding 7 (failed before: the call was accepted and the name resolved for every packet): 488 + Warning."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = UserAgent(bot_config(), on_call=answer_and_wait)
        await server.start()
        bot_port = listening(server)
        sip, mallory = await loop.create_datagram_endpoint(Mallory, local_addr=("127.0.0.1", 0),
                                                           family=socket.AF_INET)
        try:
            sip.sendto(invite(bot_port, sip.get_extra_info("sockname")[1], 2, "localhost", 4000),
                       ("127.0.0.1", bot_port))
            resp = await mallory.final()
            assert resp.status == 488 and "host name" in (resp.headers.get("Warning") or "")
            assert not server.calls
        finally:
            sip.close()
            await server.stop()

    asyncio.run(main())


@pytest.mark.parametrize("attackers", [4])
def test_unacknowledged_calls_from_one_source_cannot_fill_the_bot(attackers: int) -> None:
    """Finding 6 (failed before: four INVITEs never acknowledged took all four call slots and the genuine caller
    got 503): each source may hold ``max_unacked_per_source`` unacknowledged calls; the rest get 503."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = UserAgent(bot_config(max_calls=attackers, max_unacked_per_source=2),
                           on_call=answer_and_wait)
        caller = UserAgent(SipConfig(listen_udp=f"127.0.0.2:{free_port()}", listen_tcp=None,
                                     **rtp_ports(50)))
        await server.start()
        await caller.start()
        bot_port = listening(server)
        sip, mallory = await loop.create_datagram_endpoint(Mallory, local_addr=("127.0.0.1", 0),
                                                           family=socket.AF_INET)
        me = sip.get_extra_info("sockname")[1]
        try:
            for n in range(attackers):
                sip.sendto(invite(bot_port, me, 10 + n, "127.0.0.1", 9), ("127.0.0.1", bot_port))
            statuses = sorted([(await mallory.final()).status for _ in range(attackers)])
            assert statuses == [200, 200, 503, 503]
            leg = await caller.dial(f"sip:bot@127.0.0.1:{bot_port}")
            assert leg.state == "answered"
            await leg.hangup()
        finally:
            sip.close()
            await caller.stop()
            await server.stop()

    asyncio.run(main())


def test_a_call_on_hold_is_not_ended_for_silence() -> None:
    """Neither side of a held call sends RTP: the no-media timeout does not apply until it is taken off hold."""
    async def main() -> None:
        legs: list[CallLeg] = []

        async def bot(leg: CallLeg) -> None:
            legs.append(leg)
            await answer_and_wait(leg)

        server = UserAgent(bot_config(no_media_timeout_s=0.3), on_call=bot)
        phone = UserAgent(bot_config(no_media_timeout_s=0.3))
        await server.start()
        await phone.start()
        try:
            leg = await phone.dial(f"sip:bot@127.0.0.1:{listening(server)}")
            await asyncio.wait_for(legs[0].answered.wait(), 5)
            await leg.hold()
            assert legs[0].remote_hold and not legs[0].rtp.expect_media and not leg.rtp.expect_media
            loop = asyncio.get_running_loop()
            held_at = loop.time()
            while loop.time() - held_at < 4 * 0.3:  # several timeouts' worth of silence, both ways
                await asyncio.sleep(0.05)
                assert leg.state == legs[0].state == "answered"
            received = legs[0].rtp.stats.received
            await leg.unhold()
            assert legs[0].rtp.expect_media and leg.rtp.expect_media
            while legs[0].rtp.stats.received < received + 5:  # media flows again
                await asyncio.sleep(0.02)
            await leg.hangup()
            await asyncio.wait_for(legs[0].ended.wait(), 5)
            assert legs[0].end_reason == "remote hangup"
        finally:
            await phone.stop()
            await server.stop()

    asyncio.run(main())
