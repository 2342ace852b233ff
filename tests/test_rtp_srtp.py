"""SRTP on a real RTP session over loopback: both sides decrypt each other's audio; plain or forged packets
from the peer's own address are dropped, counted and never latch the stream."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
from net_helpers import rtp_ports

from telephony.codecs import PCMU
from telephony.rtp.packet import RtpPacket
from telephony.rtp.session import RtpSession
from telephony.sdp import SrtpKeys, new_srtp_key

SUITE = "AES_CM_128_HMAC_SHA1_80"


def test_srtp_audio_both_ways_and_plain_packets_are_refused() -> None:
    heard_a: list[bytes] = []
    heard_b: list[bytes] = []

    async def main() -> tuple[RtpSession, RtpSession]:
        a = RtpSession(on_audio=heard_a.append)
        b = RtpSession(on_audio=heard_b.append)
        await a.open("127.0.0.1", *rtp_ports(50).values())
        await b.open("127.0.0.1", *rtp_ports(50).values())
        key_a, key_b = new_srtp_key(), new_srtp_key()
        a.configure(PCMU, None, ("127.0.0.1", b.local_port), SrtpKeys(SUITE, key_a, key_b))
        # Before b hears a: a plain RTP packet from a's own address (a forger on the same host) is refused.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
            forger.bind(("127.0.0.1", 0))
            b.configure(PCMU, None, ("127.0.0.1", a.local_port), SrtpKeys(SUITE, key_b, key_a))
            forger.sendto(RtpPacket(0, 1, 160, 1234, PCMU.encode(bytes(320))).to_bytes(), ("127.0.0.1", b.local_port))
            loop = asyncio.get_running_loop()
            end = loop.time() + 5
            while b.stats.srtp_failed == 0 and loop.time() < end:
                await asyncio.sleep(0.02)
        assert b.remote == ("127.0.0.1", a.local_port)  # not latched onto the forger
        t = np.arange(16000) / 16000
        a.write_nowait((np.sin(2 * np.pi * 600 * t) * 8000).astype(np.int16).tobytes())
        b.write_nowait((np.sin(2 * np.pi * 900 * t) * 8000).astype(np.int16).tobytes())
        a.start()
        b.start()
        end = asyncio.get_running_loop().time() + 5
        while (a.stats.received < 40 or b.stats.received < 40) and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.02)
        await a.close()
        await b.close()
        return a, b

    a, b = asyncio.run(main())
    assert a.srtp and b.srtp
    assert b.stats.srtp_failed == 1 and a.stats.srtp_failed == 0
    assert a.stats.received >= 40 and b.stats.received >= 40
    for chunks, hz in ((heard_b, 600), (heard_a, 900)):
        x = np.frombuffer(b"".join(chunks), np.int16).astype(np.float64)
        assert np.sqrt((x**2).mean()) > 1000
        assert abs(np.argmax(np.abs(np.fft.rfft(x))) * 16000 / len(x) - hz) < 15
