"""The SIP endpoint on its own, bytes in and bytes out over loopback UDP: without an INVITE layer it answers
OPTIONS (its Allow lists only what it implements), refuses INVITE with 501, and a handler added later takes
the methods it claims and joins the Allow header."""

from __future__ import annotations

import asyncio
import socket
from typing import cast

from net_helpers import free_port

from telephony.config import SipConfig
from telephony.sip.endpoint import Endpoint
from telephony.sip.message import SipRequest, SipResponse, make_response, parse_message
from telephony.sip.transport import Peer


def request(method: str, n: int, port: int) -> bytes:
    return (f"{method} sip:bot@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKep{n};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:alice@127.0.0.1>;tag=a{n}\r\n"
            "To: <sip:bot@127.0.0.1>\r\n"
            f"Call-ID: endpoint-{n}\r\n"
            f"CSeq: 1 {method}\r\n"
            "Content-Length: 0\r\n\r\n").encode()


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[SipResponse] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        msg = parse_message(data)
        assert isinstance(msg, SipResponse)
        self.queue.put_nowait(msg)


class MessageHandler:
    """A layer above the endpoint that takes MESSAGE requests (RFC 3428) and answers them itself."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.seen: list[str] = []

    def on_request(self, req: SipRequest, peer: Peer) -> bool:
        if req.method != "MESSAGE":
            return False
        self.seen.append(req.call_id)
        self.endpoint.server_transaction(req, peer).respond(make_response(req, 200))
        return True


def test_endpoint_alone_and_with_a_handler() -> None:
    async def main() -> None:
        port = free_port()
        endpoint = Endpoint(SipConfig(listen_udp=f"127.0.0.1:{port}", listen_tcp=None), [])
        await endpoint.start()
        transport, inbox = await asyncio.get_running_loop().create_datagram_endpoint(
            Inbox, local_addr=("127.0.0.1", 0), family=socket.AF_INET)
        me = cast(tuple, transport.get_extra_info("sockname"))[1]

        async def exchange(method: str, n: int) -> SipResponse:
            transport.sendto(request(method, n, me), ("127.0.0.1", port))
            return await asyncio.wait_for(inbox.queue.get(), 5)

        try:
            options = await exchange("OPTIONS", 1)
            assert options.status == 200 and options.headers.get("Allow") == "OPTIONS"
            assert (await exchange("INVITE", 2)).status == 501
            assert (await exchange("BYE", 3)).status == 481
            assert (await exchange("MESSAGE", 4)).status == 405
            handler = MessageHandler(endpoint)
            endpoint.add_handler(handler, ["MESSAGE"])
            assert (await exchange("MESSAGE", 5)).status == 200 and handler.seen == ["endpoint-5"]
            assert (await exchange("OPTIONS", 6)).headers.get("Allow") == "OPTIONS, MESSAGE"
        finally:
            transport.close()
            await endpoint.close()

    asyncio.run(main())
