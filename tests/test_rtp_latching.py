"""Whose RTP a call accepts: a stranger spraying packets at the RTP port range must neither hear the bot nor be
heard by it (the "RTP bleed" / hijack class), and a call never switches to a stray source once its media started.
Real calls between two of our own user agents on loopback; the attacker sends from 127.0.0.2 or another port."""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest
from net_helpers import free_port, rtp_ports
from pydantic import ValidationError

from telephony.call import CallLeg
from telephony.codecs import PCMU
from telephony.config import SipConfig
from telephony.rtp.packet import RtpPacket
from telephony.rtp.session import RtpSession
from telephony.sip.ua import UserAgent


def config(rtp: dict[str, int], **extra: object) -> SipConfig:
    return SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, **rtp, **extra)  # type: ignore[arg-type]


def tone(hz: float, seconds: float) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).tobytes()


def loud_frequency(chunks: list[bytes]) -> tuple[int, float]:
    """(number of loud 20 ms frames, dominant frequency of the loud part)."""
    a = np.frombuffer(b"".join(chunks), np.int16)
    frames = a[: len(a) // 320 * 320].reshape(-1, 320).astype(np.float64)
    loud = frames[np.sqrt((frames**2).mean(axis=1)) > 2000]
    if not len(loud):
        return 0, 0.0
    x = loud.reshape(-1)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return len(loud), float(np.argmax(spectrum) * 16000 / len(x))


class Attacker(asyncio.DatagramProtocol):
    """A UDP socket that sends well-formed PCMU packets of a 300 Hz tone and counts what it gets back."""

    def __init__(self) -> None:
        self.received = 0
        self.transport: asyncio.DatagramTransport | None = None
        self._seq = 0
        self._tone = PCMU.encode(tone(300, 0.02)[::2])  # 160 samples at 8 kHz

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.received += 1

    def send(self, target: tuple[str, int]) -> None:
        assert self.transport is not None
        self._seq += 1
        packet = RtpPacket(PCMU.payload_type, self._seq & 0xFFFF, self._seq * 160, 0xBADBAD, self._tone)
        self.transport.sendto(packet.to_bytes(), target)

    def spray(self, host: str, port_min: int, port_max: int) -> None:
        """One packet to every even port of the range, as an attacker who does not know the call's port."""
        for port in range(port_min, port_max + 1, 2):
            self.send((host, port))


async def attacker_on(host: str) -> Attacker:
    _, proto = await asyncio.get_running_loop().create_datagram_endpoint(Attacker, local_addr=(host, 0))
    return proto


async def until(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    end = asyncio.get_running_loop().time() + timeout
    while not cond() and asyncio.get_running_loop().time() < end:
        await asyncio.sleep(0.02)


def test_sprayed_rtp_neither_hears_the_bot_nor_is_heard() -> None:
    heard_by_bot: list[bytes] = []
    heard_by_caller: list[bytes] = []
    result: dict[str, object] = {}
    bot_rtp = rtp_ports(100)  # the range the attacker sprays

    async def main() -> None:
        sprayer = await attacker_on("127.0.0.2")
        same_host = await attacker_on("127.0.0.1")  # on the caller's own address, another port

        async def spraying() -> None:
            while True:
                sprayer.spray("127.0.0.1", bot_rtp["rtp_port_min"], bot_rtp["rtp_port_max"])
                await asyncio.sleep(0.02)

        async def bot(leg: CallLeg) -> None:
            leg.add_sink(heard_by_bot.append)
            # The offer/answer is done; a sprayed packet lands before the caller's first RTP packet, the moment
            # the reported attack hit.
            sprayer.spray("127.0.0.1", bot_rtp["rtp_port_min"], bot_rtp["rtp_port_max"])
            await leg.answer()
            await leg.write_audio(tone(1000, 1.0))
            await leg.wait_ended()

        server = UserAgent(config(bot_rtp), on_call=bot)
        phone = UserAgent(config(rtp_ports(100)))
        await server.start()
        await phone.start()
        spray = asyncio.create_task(spraying())
        assert server.transport.udp_address is not None
        try:
            leg = await phone.dial(f"sip:4000@127.0.0.1:{server.transport.udp_address[1]}", caller="5550000")
            leg.add_sink(heard_by_caller.append)
            bot_leg = next(iter(server.calls.values()))
            talking = asyncio.create_task(leg.write_audio(tone(500, 2.0)))
            await until(lambda: loud_frequency(heard_by_bot)[0] >= 20)
            # Media is flowing from the caller: packets from another port of the caller's address are stray too.
            for _ in range(50):
                same_host.send(("127.0.0.1", bot_leg.rtp.local_port))
                await asyncio.sleep(0.005)
            await talking
            while leg.queued_ms > 0:
                await asyncio.sleep(0.02)
            await until(lambda: loud_frequency(heard_by_bot)[0] >= 80 and loud_frequency(heard_by_caller)[0] >= 40)
            result["bot_sends_to"] = bot_leg.rtp.remote
            result["caller_rtp"] = ("127.0.0.1", leg.rtp.local_port)
            result["stray"] = bot_leg.rtp.stats.stray
            await leg.hangup()
            await asyncio.wait_for(bot_leg.ended.wait(), 5)
        finally:
            spray.cancel()
            await phone.stop()
            await server.stop()
            result["attacker_got"] = sprayer.received + same_host.received
            assert sprayer.transport is not None and same_host.transport is not None
            sprayer.transport.close()
            same_host.transport.close()

    asyncio.run(main())
    assert result["attacker_got"] == 0  # not one packet of the bot's audio reached the attacker
    assert result["bot_sends_to"] == result["caller_rtp"]
    n, hz = loud_frequency(heard_by_bot)
    assert n >= 80 and abs(hz - 500) < 15  # the bot heard the caller, not the attacker's 300 Hz
    n, hz = loud_frequency(heard_by_caller)
    assert n >= 40 and abs(hz - 1000) < 15
    assert result["stray"] >= 50  # type: ignore[operator]


async def _session(latching: str, signalling_host: str | None = None) -> RtpSession:
    session = RtpSession(latching=latching, signalling_host=signalling_host)  # type: ignore[arg-type]
    await session.open("127.0.0.1", *rtp_ports(100).values())
    return session


async def _delivered(session: RtpSession, count: int) -> None:
    await until(lambda: session.stats.received + session.stats.stray >= count)


def test_sdp_latching_takes_any_port_of_the_sdp_address_and_keeps_it(caplog: pytest.LogCaptureFixture) -> None:
    result: dict[str, object] = {}

    async def main() -> None:
        session = await _session("sdp")
        stranger = await attacker_on("127.0.0.2")
        peer = await attacker_on("127.0.0.1")
        other_port = await attacker_on("127.0.0.1")
        target = ("127.0.0.1", session.local_port)
        try:
            stranger.send(target)  # before any SDP: nobody is known to latch onto
            await _delivered(session, 1)
            session.configure(PCMU, None, ("127.0.0.1", free_port()))  # the SBC advertises another port
            for _ in range(100):
                stranger.send(target)
            await _delivered(session, 101)
            result["before"] = (session.stats.received, session._latched)
            peer.send(target)
            other_port.send(target)
            await _delivered(session, 103)
            assert peer.transport is not None
            result["latched"] = session.remote == peer.transport.get_extra_info("sockname")
            session.configure(PCMU, None, session._sdp_remote)  # type: ignore[arg-type]  # same SDP: kept
            result["kept"] = session.remote == peer.transport.get_extra_info("sockname")
            session.configure(PCMU, None, ("127.0.0.2", 4000))  # a re-INVITE moved the peer: a new latch
            result["moved"] = (session.remote, session._latched)
            result["stats"] = (session.stats.received, session.stats.stray)
        finally:
            await session.close()
            for a in (stranger, peer, other_port):
                assert a.transport is not None
                a.transport.close()

    with caplog.at_level(logging.WARNING, logger="telephony.rtp.session"):
        asyncio.run(main())
    assert result["before"] == (0, False)
    assert result["latched"] is True and result["kept"] is True
    assert result["moved"] == (("127.0.0.2", 4000), False)
    assert result["stats"] == (1, 102)
    # 102 stray packets within seconds: one log line, not a flood.
    assert len([r for r in caplog.records if "stray" in r.getMessage()]) == 1


def test_signalling_latching_follows_the_sip_source_not_the_private_sdp_address() -> None:
    """A caller behind NAT: its SDP names an address nobody reaches, its SIP and RTP come from the public one."""
    result: dict[str, object] = {}

    async def main() -> None:
        session = await _session("signalling", signalling_host="127.0.0.2")
        stranger = await attacker_on("127.0.0.1")
        caller = await attacker_on("127.0.0.2")
        target = ("127.0.0.1", session.local_port)
        try:
            session.configure(PCMU, None, ("127.0.0.3", free_port()))  # the "private" address in its SDP
            session.start()
            stranger.send(target)
            await _delivered(session, 1)
            caller.send(target)
            await _delivered(session, 2)
            stranger.send(target)
            await _delivered(session, 3)
            await until(lambda: caller.received >= 5)
            result["got"] = (caller.received >= 5, stranger.received)
            result["stats"] = (session.stats.received, session.stats.stray)
        finally:
            await session.close()
            for a in (stranger, caller):
                assert a.transport is not None
                a.transport.close()

    asyncio.run(main())
    assert result["got"] == (True, 0)
    assert result["stats"] == (1, 2)


def test_first_latching_keeps_the_old_rule_and_bad_settings_are_refused() -> None:
    async def main() -> tuple[int, int]:
        session = await _session("first")
        anyone = await attacker_on("127.0.0.2")
        try:
            session.configure(PCMU, None, ("127.0.0.1", free_port()))
            anyone.send(("127.0.0.1", session.local_port))
            await _delivered(session, 1)
            return session.stats.received, session.stats.stray
        finally:
            await session.close()
            assert anyone.transport is not None
            anyone.transport.close()

    assert asyncio.run(main()) == (1, 0)
    assert SipConfig().rtp_latching == "sdp"
    with pytest.raises(ValidationError, match="rtp_latching"):
        SipConfig(rtp_latching="any")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="signalling source"):
        RtpSession(latching="signalling")
    with pytest.raises(ValueError, match="must be one of"):
        RtpSession(latching="nobody")  # type: ignore[arg-type]
