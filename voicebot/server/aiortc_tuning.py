"""The one place voicebot reaches into aiortc's internals: the jitter buffer of received audio.

aiortc's ``RTCRtpReceiver`` holds 4 Opus packets (80 ms) before decoding a caller's audio and has no public
setting for it. On the LAN or loopback an on-premise bot is called over, that wait is pure reply latency (the
end of the caller's speech reaches the VAD late), so the receiver's private buffer is replaced by one that lets
audio through after one packet. This works with the aiortc versions pinned in pyproject.toml;
``tests/test_aiortc_tuning.py`` fails if it stops taking effect, and a changed aiortc raises here instead of
being silently ignored.
"""

from __future__ import annotations

from importlib.metadata import version

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer

AUDIO_IN_PREFETCH = 1
"""RTP packets aiortc holds before decoding the caller's audio (aiortc's own default: 4)."""

_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # RTCRtpReceiver.__jitter_buffer, name-mangled


class AiortcInternalsChanged(RuntimeError):
    """The installed aiortc no longer has the private members this module tunes."""


def _jitter_buffer(receiver: RTCRtpReceiver) -> JitterBuffer:
    buffer = getattr(receiver, _JITTER_BUFFER, None)
    if not isinstance(buffer, JitterBuffer) or not isinstance(getattr(buffer, "_prefetch", None), int):
        raise AiortcInternalsChanged(
            f"aiortc {version('aiortc')}: RTCRtpReceiver has no jitter buffer at {_JITTER_BUFFER}; the caller's "
            "audio keeps aiortc's 80 ms prefetch (use the aiortc version range pinned in pyproject.toml)")
    return buffer


def audio_prefetch(receiver: RTCRtpReceiver) -> int:
    """How many packets ``receiver``'s jitter buffer holds before it releases a frame."""
    return int(_jitter_buffer(receiver)._prefetch)


def set_audio_prefetch(receiver: RTCRtpReceiver, prefetch: int = AUDIO_IN_PREFETCH) -> None:
    """Make ``receiver`` (an audio receiver, before media flows) decode after ``prefetch`` packets.

    Raises :class:`AiortcInternalsChanged` if aiortc's receiver has no such buffer any more."""
    current = _jitter_buffer(receiver)
    setattr(receiver, _JITTER_BUFFER, JitterBuffer(capacity=current.capacity, prefetch=prefetch))


def low_latency_audio_in(pc: RTCPeerConnection, prefetch: int = AUDIO_IN_PREFETCH) -> None:
    """:func:`set_audio_prefetch` on every audio receiver of ``pc`` (call it once the offer is applied)."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            set_audio_prefetch(transceiver.receiver, prefetch)
