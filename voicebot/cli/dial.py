"""``voicebot dial sip:USER@HOST[:PORT]``: place an outbound SIP call, directly or through a trunk.

With ``--play`` the call plays a WAV file (and ``--record`` saves what the other side said) and hangs up;
without it the bot itself talks to whoever answers, with the same pipeline as inbound calls.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import wave
from pathlib import Path

import click

from voicebot.cli.common import config_option, settings_or_exit


def _read_wav_16k(path: Path) -> bytes:
    """16 kHz mono 16-bit PCM from a WAV file; raises click.ClickException with the reason otherwise."""
    import numpy as np

    from audio.pcm import resample

    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() != 2:
                raise click.ClickException(f"{path}: only 16-bit PCM WAV files can be played")
            rate, channels = w.getframerate(), w.getnchannels()
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    except (OSError, wave.Error, EOFError) as exc:
        raise click.ClickException(f"{path}: not a readable WAV file ({exc})") from None
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return resample(samples.tobytes(), rate)


@click.command()
@config_option
@click.argument("uri")
@click.option("--trunk", "trunk_name", default=None, help="Place the call through this configured trunk.")
@click.option("--play", "play", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Play this WAV to the callee instead of running the bot, then hang up.")
@click.option("--record", "record", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save what the callee says to this WAV (16 kHz mono).")
@click.option("--wait", "wait_s", type=float, default=2.0, show_default=True,
              help="With --play: seconds to keep listening after the file ended.")
@click.option("--caller", default="voicebot", show_default=True, help="User part of From (without a trunk).")
@click.option("--ring-timeout", type=float, default=None, help="Seconds to ring (default: sip.ring_timeout_s).")
def dial(config_path: str | None, uri: str, trunk_name: str | None, play: Path | None, record: Path | None,
         wait_s: float, caller: str, ring_timeout: float | None) -> None:
    """Call URI (e.g. sip:1002@192.0.2.10 or, with --trunk, sip:+15551234@provider)."""
    settings = settings_or_exit(config_path)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from audio.pcm import FRAME_S, SAMPLE_RATE
    from telephony.config import split_hostport
    from telephony.sip.ua import DialError, UserAgent
    from voicebot.server.sip import node_trunks

    trunks = node_trunks(settings)  # on a cluster node: through the SIP front, no registration of its own
    trunk = None
    if trunk_name:
        try:
            trunk = next(t for t in trunks if t.name == trunk_name)
        except StopIteration:
            names = ", ".join(t.name for t in settings.trunks) or "none configured"
            raise click.ClickException(f"no trunk named {trunk_name!r} (trunks: {names})") from None
    audio = _read_wav_16k(play) if play else None
    # An ephemeral port, so dialling works while `voicebot serve` holds 5060 on the same machine.
    host = split_hostport(settings.sip.listen_udp or "0.0.0.0:5060")[0]
    sip = settings.sip.model_copy(update={"listen_udp": f"{host}:0", "listen_tcp": f"{host}:0",
                                          "listen_tls": f"{host}:0" if settings.sip.listen_tls else None})

    async def run() -> int:
        ua = UserAgent(sip, trunks)
        await ua.start()
        heard: list[bytes] = []
        try:
            try:
                leg = await ua.dial(uri, trunk=trunk, caller=caller, ring_timeout=ring_timeout)
            except DialError as exc:
                click.echo(f"voicebot: call to {uri} failed: {exc}", err=True)
                return 1
            click.echo(f"voicebot: {uri} answered (call id {leg.call_id})", err=True)
            leg.add_sink(heard.append)
            if audio is not None:
                await leg.write_audio(audio)
                while leg.queued_ms > 0 and leg.state == "answered":
                    await asyncio.sleep(FRAME_S)
                try:
                    await asyncio.wait_for(leg.ended.wait(), wait_s)
                except TimeoutError:
                    await leg.hangup()
            else:
                await _run_bot(settings, leg)
            click.echo(f"voicebot: call ended ({leg.end_reason})", err=True)
            return 0
        finally:
            await ua.stop()
            if record is not None:
                with wave.open(str(record), "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(SAMPLE_RATE)
                    w.writeframes(b"".join(heard))

    try:
        sys.exit(asyncio.run(run()))
    except OSError as exc:
        raise click.ClickException(f"cannot place the call: {exc}") from None


async def _run_bot(settings, leg) -> None:  # type: ignore[no-untyped-def]
    from dialogs.db.engine import DatabaseError
    from dialogs.domain.loader import DomainError
    from telephony.transport import SipCallTransport
    from voicebot.models import ModelError
    from voicebot.runtime import Runtime
    from voicebot.server.sip import sip_call_runner

    try:
        runtime = await asyncio.to_thread(Runtime.load, settings)
    except (ModelError, DatabaseError, DomainError) as exc:
        await leg.hangup()
        raise click.ClickException(str(exc)) from None
    try:
        await sip_call_runner(runtime)(leg, SipCallTransport(leg))
        if leg.state != "ended":
            await leg.hangup()
    finally:
        runtime.close()
