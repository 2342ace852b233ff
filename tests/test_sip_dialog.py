"""In-dialog behaviour with hand-written messages as bytes: an INVITE without SDP (offer in our 200, answer
in the ACK), SIP INFO DTMF, UPDATE refresh and hold, a refused REFER, CSeq order, BYE."""

from __future__ import annotations

import asyncio
import socket

from net_helpers import free_port, rtp_ports

from telephony.call import CallLeg
from telephony.config import SipConfig
from telephony.sdp import AudioDescription
from telephony.sip.message import SipResponse, parse_message
from telephony.sip.ua import UserAgent


class Peer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[SipResponse] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        msg = parse_message(data)
        if isinstance(msg, SipResponse):
            self.queue.put_nowait(msg)

    async def final(self, method: str) -> SipResponse:
        while True:
            resp = await asyncio.wait_for(self.queue.get(), 5)
            if resp.status >= 200 and resp.cseq.method == method:
                return resp


def sdp(port: int, codec: str = "8 PCMA", direction: str = "sendrecv") -> str:
    pt, name = codec.split()
    return (f"v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}/8000\r\na={direction}\r\n")


def test_late_offer_info_update_refer_and_bye() -> None:
    legs: list[CallLeg] = []

    async def bot(leg: CallLeg) -> None:
        legs.append(leg)
        await leg.answer()
        await leg.wait_ended()

    async def main() -> dict:
        out: dict = {}
        ua = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, **rtp_ports(100)), on_call=bot)
        await ua.start()
        loop = asyncio.get_running_loop()
        sig, peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
        rtp_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp_sock.bind(("127.0.0.1", 0))
        rtp_sock.settimeout(5)
        me = sig.get_extra_info("sockname")
        target = ua.transport.udp_address
        to_tag = ""
        n = 0

        def send(method: str, cseq: int, body: str = "", ctype: str = "application/sdp", extra: str = "") -> None:
            nonlocal n
            n += 1
            text = (f"{method} sip:bot@127.0.0.1:{target[1]} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{me[1]};branch=z9hG4bKdlg{n};rport\r\n"
                    f"From: <sip:5550100@127.0.0.1>;tag=peer1\r\nTo: <sip:bot@127.0.0.1>{to_tag}\r\n"
                    f"Call-ID: dialog-test\r\nCSeq: {cseq} {method}\r\nContact: <sip:peer@127.0.0.1:{me[1]}>\r\n"
                    f"Max-Forwards: 70\r\n{extra}" + (f"Content-Type: {ctype}\r\n" if body else "")
                    + f"Content-Length: {len(body.encode())}\r\n\r\n{body}")
            sig.sendto(text.encode(), target)

        try:
            send("INVITE", 1)  # no SDP: the bot must offer
            ok = await peer.final("INVITE")
            offer = AudioDescription.parse(ok.body)
            out["offer"] = offer.codec_names()
            to_tag = f";tag={ok.to_addr.tag}"
            send("ACK", 1, sdp(rtp_sock.getsockname()[1]))  # the answer: PCMA to our RTP socket
            data, _ = await loop.run_in_executor(None, rtp_sock.recvfrom, 2048)
            out["rtp_pt"] = data[1] & 0x7F  # the bot sends PCMA where the ACK said

            send("INFO", 2, "Signal=7\r\nDuration=160\r\n", "application/dtmf-relay")
            out["info"] = (await peer.final("INFO")).status
            out["key"] = await asyncio.wait_for(legs[0].dtmf.get(), 5)

            send("UPDATE", 3)  # session refresh
            out["refresh"] = (await peer.final("UPDATE")).status
            send("UPDATE", 4, sdp(rtp_sock.getsockname()[1], direction="sendonly"))  # hold
            held = await peer.final("UPDATE")
            out["hold"] = (held.status, AudioDescription.parse(held.body).direction, legs[0].remote_hold)

            send("REFER", 5, extra="Refer-To: <sip:elsewhere@192.0.2.1>\r\n")
            out["refer"] = (await peer.final("REFER")).status
            send("OPTIONS", 2)  # CSeq lower than the last one: out of order
            out["old_cseq"] = (await peer.final("OPTIONS")).status

            send("BYE", 6)
            out["bye"] = (await peer.final("BYE")).status
            await asyncio.wait_for(legs[0].ended.wait(), 5)
            out["end"] = legs[0].end_reason
        finally:
            sig.close()
            rtp_sock.close()
            await ua.stop()
        return out

    out = asyncio.run(main())
    assert out["offer"] == ["PCMU", "PCMA", "telephone-event"]
    assert out["rtp_pt"] == 8
    assert out["info"] == 200 and out["key"] == "7"
    assert out["refresh"] == 200
    assert out["hold"] == (200, "recvonly", True)
    assert out["refer"] == 403
    assert out["old_cseq"] == 500
    assert out["bye"] == 200 and out["end"] == "remote hangup"
