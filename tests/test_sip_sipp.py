"""The SIP stack against a real peer: sipp (Debian package sip-tester) as caller and as registrar."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
from net_helpers import free_port, rtp_ports

from telephony.config import SipConfig, TrunkConfig
from telephony.sip.registration import Registration
from telephony.sip.ua import UserAgent

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed (apt-get install sip-tester)"),
]
SCENARIOS = Path(__file__).parent / "sipp"



@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sipp's working directory: its bundled DTMF pcaps under pcap/, a 1 kHz u-law tone to stream."""
    d = tmp_path_factory.mktemp("sipp")
    (d / "pcap").symlink_to("/usr/share/sip-tester")
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-e", "u-law", "-t", "ul", str(d / "tone.ul"),
                    "synth", "1.5", "sine", "1000", "vol", "0.5"], check=True)
    return d


async def run_sipp(workdir: Path, scenario: str, target: str, *args: str, replace: dict[str, str] | None = None,
                   timeout: float = 30) -> subprocess.CompletedProcess:
    text = (SCENARIOS / scenario).read_text()
    for key, value in (replace or {}).items():
        text = text.replace(key, value)
    path = workdir / f"run-{scenario}"
    path.write_text(text)
    cmd = ["sipp", *( [target] if target else []), "-sf", str(path), "-m", "1", "-i", "127.0.0.1",
           "-p", str(free_port()), "-mp", str(free_port()), "-nostdin", "-timeout", f"{int(timeout)}s",
           "-timeout_error", "-max_recv_loops", "1000", *args]
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=workdir, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout + 10)
    return subprocess.CompletedProcess(cmd, proc.returncode or 0, out.decode(errors="replace"), "")


def ua_config(transport: str = "udp") -> SipConfig:
    port = free_port(socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM)
    return SipConfig(listen_udp=f"127.0.0.1:{port}" if transport == "udp" else None,
                     listen_tcp=f"127.0.0.1:{port}" if transport == "tcp" else None,
                     **rtp_ports(1000))


def dominant_hz(pcm16k: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(pcm16k.astype(np.float64) * np.hanning(len(pcm16k))))
    return float(np.argmax(spectrum) * 16000 / len(pcm16k))


def test_inbound_call_audio_dtmf_and_caller_bye(workdir: Path) -> None:
    received: list[bytes] = []
    legs = []

    async def on_call(leg):  # type: ignore[no-untyped-def]
        legs.append(leg)
        leg.add_sink(received.append)
        await leg.answer()
        await leg.wait_ended()

    async def main() -> subprocess.CompletedProcess:
        ua = UserAgent(ua_config(), on_call=on_call)
        await ua.start()
        try:
            res = await run_sipp(workdir, "uac_stream_dtmf.xml", f"127.0.0.1:{ua.transport.udp_address[1]}",
                                 replace={"RTP_FILE": str(workdir / "tone.ul"), "STREAM_MS": "1800"})
            await asyncio.wait_for(legs[0].ended.wait(), 5)
            return res
        finally:
            await ua.stop()

    res = asyncio.run(main())
    assert res.returncode == 0, res.stdout
    leg = legs[0]
    assert leg.end_reason == "remote hangup"
    assert leg.caller == "5551234" and leg.dialled == "service" and leg.caller_name == "Test Caller"
    assert leg.rtp.codec.name == "PCMU" and leg.rtp.dtmf_pt == 101
    keys = [leg.dtmf.get_nowait() for _ in range(leg.dtmf.qsize())]
    assert keys == ["1"]
    audio = np.frombuffer(b"".join(received), dtype=np.int16)
    frames = audio[: len(audio) // 320 * 320].reshape(-1, 320)
    loud = frames[np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) > 3000]
    # 1.5 s of tone is 75 frames of 20 ms; allow the jitter buffer's edges.
    assert 65 <= len(loud) <= 80, len(loud)
    assert abs(dominant_hz(loud.reshape(-1)[:16000]) - 1000) < 20
    assert leg.rtp.stats.sent > 50  # the bot sent its own stream (silence) back


def test_cancel_before_answer(workdir: Path) -> None:
    legs = []

    async def on_call(leg):  # type: ignore[no-untyped-def]
        legs.append(leg)
        await leg.wait_ended()  # never answers: the caller cancels while it rings

    async def main() -> subprocess.CompletedProcess:
        ua = UserAgent(ua_config(), on_call=on_call)
        await ua.start()
        try:
            res = await run_sipp(workdir, "uac_cancel.xml", f"127.0.0.1:{ua.transport.udp_address[1]}")
            await asyncio.wait_for(legs[0].ended.wait(), 5)
            return res
        finally:
            await ua.stop()

    res = asyncio.run(main())
    assert res.returncode == 0, res.stdout
    assert legs[0].end_reason == "cancelled" and legs[0].dialog is None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_bot_hangs_up(workdir: Path, transport: str) -> None:
    legs = []

    async def on_call(leg):  # type: ignore[no-untyped-def]
        legs.append(leg)
        await leg.answer()
        await leg.write_audio(bytes(640 * 10))  # 200 ms to say goodbye before the BYE
        await leg.hangup()

    async def main() -> subprocess.CompletedProcess:
        cfg = ua_config(transport)
        ua = UserAgent(cfg, on_call=on_call)
        await ua.start()
        port = (ua.transport.udp_address or ua.transport.tcp_address)[1]
        try:
            return await run_sipp(workdir, "uac_bot_hangs_up.xml", f"127.0.0.1:{port}",
                                  *(["-t", "t1"] if transport == "tcp" else []))
        finally:
            await ua.stop()

    res = asyncio.run(main())
    assert res.returncode == 0, res.stdout
    assert legs[0].end_reason == "local hangup"
    assert legs[0].peer.transport == transport.upper()


@pytest.mark.parametrize(("password", "expected"), [("s3cret", 200), ("wrong", 403)])
def test_register_with_digest(workdir: Path, password: str, expected: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_TRUNK_PASSWORD", password)
    registrar_port = free_port()

    async def main() -> tuple[subprocess.CompletedProcess, Registration]:
        trunk = TrunkConfig(name="sipp", host="127.0.0.1", port=registrar_port, username="bot",
                            password_env="TEST_TRUNK_PASSWORD", register=True, register_expires=60)
        ua = UserAgent(ua_config(), trunks=[trunk])
        sipp = asyncio.create_task(run_sipp(workdir, "registrar.xml", "", "-p", str(registrar_port), timeout=20))
        # No wait for sipp to be listening: a REGISTER it misses is retransmitted (timer E).
        await ua.start()
        reg = ua.registrations[0]
        try:
            res = await sipp
        finally:
            await ua.stop()
        return res, reg

    res, reg = asyncio.run(main())
    assert res.returncode == 0, res.stdout
    assert reg.last_status == expected
    if expected == 200:
        # The 200 granted 2 s; the refresh came in time, was challenged again and got 60 s.
        assert reg.attempts >= 2 and reg.expires == 60
