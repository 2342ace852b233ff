"""SIP over TLS and SRTP (SDES, RFC 4568) on loopback: our own user agent calls the bot over TLS with SRTP
and both hear each other; baresip does the same; a plain-RTP offer to an `srtp: required` trunk gets 488; a
server whose certificate names another host is refused. Certificates come from a throwaway CA made here."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from net_helpers import free_port, rtp_ports

from telephony.call import CallLeg
from telephony.config import SipConfig, TrunkConfig
from telephony.sip.ua import DialError, UserAgent


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certs(folder: Path, san: x509.GeneralName) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``san`` signed by it: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("voicebot test CA")).issuer_name(_name("voicebot test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("voicebot")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


LOOPBACK = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))


def tone(hz: float, seconds: float) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).tobytes()


def loud_frequency(samples: np.ndarray, rate: int = 16000) -> tuple[int, float]:
    """(number of loud 20 ms frames, dominant frequency of the loud part)."""
    n = rate // 50
    frames = samples[: len(samples) // n * n].reshape(-1, n).astype(np.float64)
    loud = frames[np.sqrt((frames**2).mean(axis=1)) > 2000]
    if not len(loud):
        return 0, 0.0
    x = loud.reshape(-1)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return len(loud), float(np.argmax(spectrum) * rate / len(x))


def heard(chunks: list[bytes]) -> tuple[int, float]:
    return loud_frequency(np.frombuffer(b"".join(chunks), np.int16))


def bot_config(tls_port: int, cert: Path, key: Path) -> SipConfig:
    return SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, listen_tls=f"127.0.0.1:{tls_port}",
                     tls_cert=str(cert), tls_key=str(key), **rtp_ports(100))


def phone_config() -> SipConfig:
    return SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None, **rtp_ports(100))


def trunk(port: int, ca: Path | None, srtp: str, **extra: object) -> TrunkConfig:
    return TrunkConfig.model_validate({"name": "bot", "host": "127.0.0.1", "port": port, "transport": "tls",
                                       "tls_ca": str(ca) if ca else None, "srtp": srtp, **extra})


async def until(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Until ``cond()`` holds (polled every 20 ms); a timeout leaves the assertions after it to fail."""
    end = asyncio.get_running_loop().time() + timeout
    while not cond() and asyncio.get_running_loop().time() < end:
        await asyncio.sleep(0.02)


def test_own_ua_calls_bot_over_tls_with_srtp(tmp_path: Path) -> None:
    ca, cert, key = make_certs(tmp_path, LOOPBACK)
    tls_port = free_port(socket.SOCK_STREAM)
    heard_by_bot: list[bytes] = []
    heard_by_caller: list[bytes] = []
    result: dict[str, object] = {}

    async def bot(leg: CallLeg) -> None:
        leg.add_sink(heard_by_bot.append)
        await leg.answer()
        await leg.write_audio(tone(1000, 1.0))
        await leg.wait_ended()

    async def main() -> None:
        server = UserAgent(bot_config(tls_port, cert, key),
                           [trunk(tls_port, None, "required", allowed_ips=["127.0.0.1"])], on_call=bot)
        phone_trunk = trunk(tls_port, ca, "required")
        phone = UserAgent(phone_config(), [phone_trunk])
        await server.start()
        await phone.start()
        try:
            leg = await phone.dial("sip:4000@127.0.0.1", trunk=phone_trunk)
            leg.add_sink(heard_by_caller.append)
            await leg.write_audio(tone(500, 1.0))
            while leg.queued_ms > 0:
                await asyncio.sleep(0.02)
            await until(lambda: heard(heard_by_bot)[0] >= 40 and heard(heard_by_caller)[0] >= 40)
            bot_leg = next(iter(server.calls.values()))
            result["transport"] = (leg.session.peer.transport, bot_leg.session.peer.transport)
            result["srtp"] = (leg.rtp.srtp, bot_leg.rtp.srtp)
            # A re-INVITE (hold, unhold) keeps the call encrypted.
            await leg.hold()
            await leg.unhold()
            result["srtp_after_reinvite"] = (leg.rtp.srtp, bot_leg.rtp.srtp)
            result["failed"] = (leg.rtp.stats.srtp_failed, bot_leg.rtp.stats.srtp_failed)
            await leg.hangup()
            await asyncio.wait_for(bot_leg.ended.wait(), 5)
        finally:
            await phone.stop()
            await server.stop()

    asyncio.run(main())
    assert result["transport"] == ("TLS", "TLS")
    assert result["srtp"] == (True, True) and result["srtp_after_reinvite"] == (True, True)
    assert result["failed"] == (0, 0)
    n, hz = heard(heard_by_bot)
    assert n >= 40 and abs(hz - 500) < 15
    n, hz = heard(heard_by_caller)
    assert n >= 40 and abs(hz - 1000) < 15


def test_plain_rtp_offer_to_srtp_required_trunk_gets_488(tmp_path: Path) -> None:
    ca, cert, key = make_certs(tmp_path, LOOPBACK)
    tls_port = free_port(socket.SOCK_STREAM)
    calls: list[CallLeg] = []

    async def bot(leg: CallLeg) -> None:
        calls.append(leg)
        await leg.answer()

    async def main() -> DialError:
        server = UserAgent(bot_config(tls_port, cert, key),
                           [trunk(tls_port, None, "required", allowed_ips=["127.0.0.1"])], on_call=bot)
        phone_trunk = trunk(tls_port, ca, "off")
        phone = UserAgent(phone_config(), [phone_trunk])
        await server.start()
        await phone.start()
        try:
            with pytest.raises(DialError) as err:
                await phone.dial("sip:4000@127.0.0.1", trunk=phone_trunk, ring_timeout=5)
            return err.value
        finally:
            await phone.stop()
            await server.stop()

    err = asyncio.run(main())
    assert err.status == 488
    assert calls == []


def test_server_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    ca, cert, key = make_certs(tmp_path, x509.DNSName("pbx.wrong.example"))
    tls_port = free_port(socket.SOCK_STREAM)

    async def main() -> DialError:
        server = UserAgent(bot_config(tls_port, cert, key), [])
        phone_trunk = trunk(tls_port, ca, "required")
        phone = UserAgent(phone_config(), [phone_trunk])
        await server.start()
        await phone.start()
        try:
            with pytest.raises(DialError) as err:
                await phone.dial("sip:4000@127.0.0.1", trunk=phone_trunk, ring_timeout=5)
            return err.value
        finally:
            await phone.stop()
            await server.stop()

    err = asyncio.run(main())
    assert err.status == 503
    assert "certificate" in err.reason and "127.0.0.1" in err.reason, err.reason


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed (apt-get install baresip-core)")
@pytest.mark.skipif(not Path("/usr/lib/baresip/modules/srtp.so").exists(), reason="baresip has no srtp module")
def test_baresip_calls_bot_over_tls_with_mandatory_srtp(tmp_path: Path) -> None:
    ca, cert, key = make_certs(tmp_path / "pki", LOOPBACK)
    tls_port = free_port(socket.SOCK_STREAM)
    (tmp_path / "rec").mkdir()
    (tmp_path / "phone").mkdir()
    # baresip's microphone: 1 s of silence, 2 s of 700 Hz, silence until the bot hangs up.
    t = np.arange(8000 * 2) / 8000
    mic = np.concatenate([np.zeros(8000), np.sin(2 * np.pi * 700 * t) * 12000, np.zeros(8000 * 6)])
    import soundfile as sf

    sf.write(str(tmp_path / "in.wav"), mic.astype(np.int16), 8000, subtype="PCM_16")
    (tmp_path / "phone" / "config").write_text(
        f"poll_method epoll\nsip_listen 127.0.0.1:{free_port(socket.SOCK_STREAM)}\n"
        f"sip_cafile {ca}\nsip_verify_server yes\n"
        "audio_player aubridge,nullplay\naudio_alert aubridge,nullplay\n"
        f"audio_source aufile,{tmp_path / 'in.wav'}\nnet_interface 127.0.0.1\n"
        "module_path /usr/lib/baresip/modules\n"
        + "".join(f"module {m}.so\n" for m in ("g711", "aufile", "aubridge", "sndfile", "srtp", "account", "menu"))
        + f"snd_path {tmp_path / 'rec'}\n"
    )
    (tmp_path / "phone" / "accounts").write_text("<sip:5550199@127.0.0.1;transport=tls>;regint=0;mediaenc=srtp-mand\n")
    heard_by_bot: list[bytes] = []
    result: dict[str, object] = {}

    async def bot(leg: CallLeg) -> None:
        leg.add_sink(heard_by_bot.append)
        await leg.answer()
        result["srtp"] = leg.rtp.srtp
        result["transport"] = leg.session.peer.transport
        await leg.write_audio(tone(1000, 2.0))
        await until(lambda: heard(heard_by_bot)[0] >= 40, 8)
        result["failed"] = leg.rtp.stats.srtp_failed
        await leg.hangup()

    async def main() -> str:
        server = UserAgent(bot_config(tls_port, cert, key),
                           [trunk(tls_port, None, "required", allowed_ips=["127.0.0.1"])], on_call=bot)
        await server.start()
        try:
            phone = await asyncio.create_subprocess_exec(
                "baresip", "-f", str(tmp_path / "phone"), "-e", f"/dial sip:bot@127.0.0.1:{tls_port};transport=tls",
                "-t", "12", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out, _ = await asyncio.wait_for(phone.communicate(), 40)
            return out.decode("utf-8", "replace")
        finally:
            await server.stop()

    out = asyncio.run(main())
    assert "Call established" in out, out[-3000:]
    assert result.get("transport") == "TLS" and result.get("srtp") is True, (result, out[-3000:])
    assert result.get("failed") == 0
    n, hz = heard(heard_by_bot)
    assert n >= 40 and abs(hz - 700) < 15, (n, hz)
    recording = next((tmp_path / "rec").glob("dump-*-dec.wav"))
    audio, rate = sf.read(str(recording), dtype="int16")
    n, hz = loud_frequency(audio if audio.ndim == 1 else audio[:, 0], rate)
    assert n >= 40 and abs(hz - 1000) < 15, (n, hz)


def _config_check(config: Path) -> subprocess.CompletedProcess:
    import sys

    return subprocess.run([sys.executable, "-m", "voicebot", "config", "check", str(config)], capture_output=True,
                          text=True, cwd=config.parent, timeout=120)


def test_config_check_reports_missing_certificates_and_srtp_in_clear(tmp_path: Path) -> None:
    base = f"database:\n  url: sqlite:///{tmp_path}/voicebot.db\n"
    missing = tmp_path / "missing.yaml"
    missing.write_text(base + f"sip:\n  listen_tls: 127.0.0.1:5061\n  tls_cert: {tmp_path}/nope.pem\n"
                              f"  tls_key: {tmp_path}/nope.key\n"
                              "trunks:\n  - {name: pbx, host: 192.0.2.7, transport: tls, tls_ca: /nope/ca.pem}\n")
    result = _config_check(missing)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    for key in ("sip.tls_cert", "sip.tls_key", "trunks.0.tls_ca"):
        assert key in result.stderr, result.stderr
    clear = tmp_path / "clear.yaml"
    clear.write_text(base + "trunks:\n  - {name: pbx, host: 192.0.2.7, transport: udp, srtp: required}\n"
                            "  - {name: lab, host: 192.0.2.8, transport: tls, tls_verify: false}\n")
    result = _config_check(clear)
    assert result.returncode == 0, result.stderr  # warnings leave the config usable
    assert "warning: trunks.0.srtp" in result.stderr and "in clear SDP over udp" in result.stderr
    assert "warning: trunks.1.tls_verify" in result.stderr
