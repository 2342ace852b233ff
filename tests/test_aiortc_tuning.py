"""The aiortc workaround (``voicebot.server.aiortc_tuning``) on a real aiortc call over loopback: the bot's
audio receiver decodes after one packet, and a changed aiortc is reported instead of silently ignored."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import AudioStreamTrack, MediaStreamTrack, RTCPeerConnection

from voicebot.server.aiortc_tuning import (
    AUDIO_IN_PREFETCH,
    AiortcInternalsChanged,
    audio_prefetch,
    low_latency_audio_in,
    set_audio_prefetch,
)

FRAMES = 25  # half a second of the caller's audio through the bot's receiver


async def _call() -> tuple[int, int, bool]:
    """A caller sends audio to a bot tuned as ``voicebot serve`` tunes a browser call; returns the bot
    receiver's prefetch, the frames it decoded, and whether the tuned buffer is the one the packets went to."""
    caller, bot = RTCPeerConnection(), RTCPeerConnection()
    tracks: asyncio.Queue[MediaStreamTrack] = asyncio.Queue()
    bot.on("track", tracks.put_nowait)
    caller.addTrack(AudioStreamTrack())  # aiortc's own silence source, sent as Opus
    try:
        await caller.setLocalDescription(await caller.createOffer())
        await bot.setRemoteDescription(caller.localDescription)
        low_latency_audio_in(bot)
        receiver = next(t.receiver for t in bot.getTransceivers() if t.kind == "audio")
        tuned = receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        await bot.setLocalDescription(await bot.createAnswer())
        await caller.setRemoteDescription(bot.localDescription)
        track = await asyncio.wait_for(tracks.get(), 20)
        decoded = 0
        for _ in range(FRAMES):
            await asyncio.wait_for(track.recv(), 20)
            decoded += 1
        still_used = receiver._RTCRtpReceiver__jitter_buffer is tuned and tuned._origin is not None  # type: ignore[attr-defined]
        return audio_prefetch(receiver), decoded, still_used
    finally:
        await caller.close()
        await bot.close()


def test_the_bots_audio_receiver_decodes_after_one_packet_on_a_real_call() -> None:
    prefetch, decoded, still_used = asyncio.run(_call())
    assert prefetch == AUDIO_IN_PREFETCH == 1
    assert decoded == FRAMES
    assert still_used  # the packets went through the replaced buffer, not one aiortc made later


def test_a_receiver_without_the_jitter_buffer_raises() -> None:
    class Receiver:  # what an aiortc whose internals moved would look like
        pass

    with pytest.raises(AiortcInternalsChanged, match="jitter buffer"):
        set_audio_prefetch(Receiver())  # type: ignore[arg-type]
    with pytest.raises(AiortcInternalsChanged):
        audio_prefetch(Receiver())  # type: ignore[arg-type]
