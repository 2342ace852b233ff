"""Call legs end to end between two of our own user agents on loopback: audio both ways, DTMF both ways,
hold/unhold by re-INVITE, the bridge, digest-challenged inbound trunk calls, and REFER against sipp."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import numpy as np
import pytest
from net_helpers import free_port, rtp_ports

from telephony.bridge import Bridge
from telephony.call import CallLeg
from telephony.config import SipConfig, TrunkConfig
from telephony.sip.ua import DialError, UserAgent

SCENARIOS = Path(__file__).parent / "sipp"



def config() -> SipConfig:
    return SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, **rtp_ports(100))


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


async def until(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Until ``cond()`` holds (polled every 20 ms); a timeout leaves the assertions after it to fail."""
    end = asyncio.get_running_loop().time() + timeout
    while not cond() and asyncio.get_running_loop().time() < end:
        await asyncio.sleep(0.02)


def uri(ua: UserAgent, user: str) -> str:
    return f"sip:{user}@127.0.0.1:{ua.transport.udp_address[1]}"


def test_audio_and_dtmf_both_ways_and_hold() -> None:
    heard_by_bot: list[bytes] = []
    heard_by_caller: list[bytes] = []
    result: dict[str, object] = {}

    async def bot(leg: CallLeg) -> None:
        leg.add_sink(heard_by_bot.append)
        await leg.answer()
        await leg.write_audio(tone(1000, 1.0))
        leg.send_dtmf("9")
        result["bot_key"] = await asyncio.wait_for(leg.dtmf.get(), 5)
        await leg.wait_ended()

    async def main() -> None:
        server = UserAgent(config(), on_call=bot)
        phone = UserAgent(config())
        await server.start()
        await phone.start()
        try:
            leg = await phone.dial(uri(server, "4000"), caller="5550000")
            leg.add_sink(heard_by_caller.append)
            await leg.write_audio(tone(500, 1.0))
            result["caller_key"] = await asyncio.wait_for(leg.dtmf.get(), 5)
            leg.send_dtmf("3")
            while leg.queued_ms > 0:
                await asyncio.sleep(0.02)
            await until(lambda: loud_frequency(heard_by_bot)[0] >= 40)  # through the jitter buffer
            bot_leg = next(iter(server.calls.values()))
            await leg.hold()
            # The bot answered the re-INVITE (a=sendonly) before its 200 OK: it knows and stops sending.
            result["hold"] = (leg.local_hold, leg.rtp.sending, bot_leg.remote_hold, bot_leg.rtp.sending)
            await leg.unhold()
            result["unhold"] = (leg.local_hold, leg.rtp.sending, bot_leg.remote_hold, bot_leg.rtp.sending)
            await leg.hangup()
            await asyncio.wait_for(bot_leg.ended.wait(), 5)
        finally:
            await phone.stop()
            await server.stop()

    asyncio.run(main())
    assert result["caller_key"] == "9" and result["bot_key"] == "3"
    assert result["hold"] == (True, False, True, False)
    assert result["unhold"] == (False, True, False, True)
    n, hz = loud_frequency(heard_by_bot)
    assert n >= 40 and abs(hz - 500) < 15
    n, hz = loud_frequency(heard_by_caller)
    assert n >= 40 and abs(hz - 1000) < 15


def test_bridge_connects_two_legs() -> None:
    """A phone calls the bot; the bot calls a second phone and bridges: each phone hears the other."""
    heard_a: list[bytes] = []
    heard_c: list[bytes] = []
    bridged = asyncio.Event

    async def main() -> None:
        done = bridged()
        phones: UserAgent

        async def agent_phone(leg: CallLeg) -> None:
            leg.add_sink(heard_c.append)
            await leg.answer()
            await leg.write_audio(tone(1300, 1.0))
            await leg.wait_ended()

        async def bot(leg: CallLeg) -> None:
            await leg.answer()
            other = await server.dial(uri(phones, "agent"))
            bridge = Bridge(leg, other)
            done.set()
            await bridge.wait()

        server = UserAgent(config(), on_call=bot)
        phones = UserAgent(config(), on_call=agent_phone)
        await server.start()
        await phones.start()
        try:
            leg_a = await phones.dial(uri(server, "bot"))
            leg_a.add_sink(heard_a.append)
            await asyncio.wait_for(done.wait(), 5)
            await leg_a.write_audio(tone(700, 1.0))
            while leg_a.queued_ms > 0:
                await asyncio.sleep(0.02)
            await until(lambda: loud_frequency(heard_c)[0] >= 30)  # through both legs' jitter buffers
            await leg_a.hangup()
            # The bridge hangs up the agent's leg too.
            agent_legs = [leg for leg in phones.calls.values() if leg.direction == "inbound"]
            for leg in agent_legs:
                await asyncio.wait_for(leg.ended.wait(), 5)
        finally:
            await phones.stop()
            await server.stop()

    asyncio.run(main())
    n, hz = loud_frequency(heard_c)
    assert n >= 30 and abs(hz - 700) < 15
    n, hz = loud_frequency(heard_a)
    assert n >= 30 and abs(hz - 1300) < 15


def test_inbound_access_control(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a trunk configured, an unknown source gets 403; a digest-authenticated trunk gets through."""
    monkeypatch.setenv("TRUNK_PW", "pw1")
    answered: list[CallLeg] = []

    async def bot(leg: CallLeg) -> None:
        answered.append(leg)
        await leg.answer()
        await leg.wait_ended()

    async def main() -> tuple[int, str | None]:
        ip_trunk = TrunkConfig(name="carrier", host="203.0.113.5")  # not us: loopback is not allowed
        server = UserAgent(config(), trunks=[ip_trunk], on_call=bot)
        phone = UserAgent(config())
        await server.start()
        await phone.start()
        try:
            with pytest.raises(DialError) as info:
                await phone.dial(uri(server, "100"))
            status = info.value.status
            # Now the server also accepts digest-authenticated calls from trunk "pbx".
            pbx = TrunkConfig(name="pbx", host="127.0.0.1", username="pbx", password_env="TRUNK_PW",
                              inbound_auth=True, allowed_ips=["198.51.100.0/24"])
            server.access.__init__([ip_trunk, pbx])  # type: ignore[misc]
            leg = await phone.dial(uri(server, "100"), trunk=TrunkConfig(
                name="to-bot", host="127.0.0.1", port=server.transport.udp_address[1], username="pbx",
                password_env="TRUNK_PW"))
            await leg.hangup()
            return status, answered[0].trunk.name if answered and answered[0].trunk else None
        finally:
            await phone.stop()
            await server.stop()

    status, trunk_name = asyncio.run(main())
    assert status == 403
    assert trunk_name == "pbx"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt-get install sip-tester)")
def test_outbound_dial_and_blind_transfer_against_sipp(tmp_path: Path) -> None:
    sipp_port = free_port()

    async def main() -> tuple[int, int, str]:
        proc = await asyncio.create_subprocess_exec(
            "sipp", "-sf", str(SCENARIOS / "uas_refer.xml"), "-m", "1", "-i", "127.0.0.1", "-p", str(sipp_port),
            "-mp", str(free_port()), "-nostdin", "-timeout", "20s", "-timeout_error", cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        # No wait for sipp to be listening: an INVITE it misses is retransmitted (timer A).
        ua = UserAgent(config())
        await ua.start()
        try:
            leg = await ua.dial(f"sip:agent@127.0.0.1:{sipp_port}")
            status = await leg.transfer("sip:queue@127.0.0.1:5099", timeout=10)
            await leg.hangup()
        finally:
            await ua.stop()
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        return proc.returncode or 0, status, out.decode(errors="replace")

    rc, status, out = asyncio.run(main())
    assert rc == 0, out
    assert status == 200


def test_dial_errors() -> None:
    async def main() -> list[int]:
        ua = UserAgent(config())
        await ua.start()
        out = []
        try:
            for target in ("http://x", f"sip:nobody@127.0.0.1:{free_port()}"):
                try:
                    await ua.dial(target, ring_timeout=2)
                except DialError as exc:
                    out.append(exc.status)
        finally:
            await ua.stop()
        return out

    # A bad URI is refused before sending; a port nobody listens on gives no response at all, so the
    # ring timeout gives up with 408 (there is nothing to CANCEL before a provisional response).
    assert asyncio.run(main()) == [400, 408]
