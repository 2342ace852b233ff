"""The contract every party to a call implements: a SIP :class:`~telephony.call.CallLeg`, the browser
caller's leg and the agent page's leg.

Audio crosses it as :mod:`audio.pcm` frames (16 kHz 16-bit mono, 20 ms). What the peer says goes to every
:data:`AudioSink` added with :meth:`Leg.add_sink` (the bot's pipeline, a bridge, a recorder, a transcriber,
listen-in), so many parties listen at once and each removes only its own sink. What the peer hears is written
with :meth:`Leg.write` (no waiting; a bridge or the queue) or :meth:`Leg.write_audio` (paced by the leg), and
every :class:`AudioMixer` added to the leg is mixed into it frame by frame (a supervisor whispering to an
agent). Keys the peer presses go to every key listener.

:class:`LegBase` implements the fan-out (sinks, mixers, key listeners, each isolated from the others'
errors) so the three legs share it; a leg supplies its output queue (:meth:`LegBase._enqueue`,
:attr:`Leg.queued_ms`, :meth:`Leg.clear_audio`) and calls :meth:`LegBase._audio_to_sinks` and
:meth:`LegBase._tell_key_listeners` with what comes in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from audio.pcm import mix

log = logging.getLogger(__name__)

T = TypeVar("T")

AudioSink = Callable[[bytes], None]
"""Receives each 20 ms frame (:mod:`audio.pcm` format) the peer says."""
KeyListener = Callable[[str], None]
"""Receives each key (``0-9*#A-D``) the peer presses."""

MAX_QUEUED_MS = 200
"""More audio than this queued by :meth:`Leg.write` means two clocks drift: the backlog is dropped, not heard late."""
PACED_MS = 80
""":meth:`Leg.write_audio` returns once no more than this is queued."""


class CallError(Exception):
    """A call operation the other side refused or that is not possible in the leg's state."""


class AudioMixer(Protocol):
    """Audio added on top of what a leg's peer hears (see :meth:`Leg.add_mixer`)."""

    def next_audio(self, nbytes: int) -> bytes:
        """Up to ``nbytes`` of PCM to add to the next ``nbytes`` the peer hears (less, or ``b""``, if it has
        nothing more now)."""
        ...


@runtime_checkable
class Leg(Protocol):
    """One party to a call, whatever carries it. ``state`` goes ``ringing`` -> ``answered`` -> ``ended`` (or
    ringing -> ended); ``answered`` is also set when the leg ends, so nobody waits for an answer for ever."""

    call_id: str
    channel: str
    """``sip`` or ``webrtc``."""
    caller: str | None
    dialled: str | None
    end_reason: str
    answered: asyncio.Event
    ended: asyncio.Event

    @property
    def state(self) -> str:
        """``ringing``, ``answered`` or ``ended``."""
        ...

    def add_sink(self, sink: AudioSink) -> None:
        """``sink`` gets every 20 ms the peer says while the leg is answered, until removed."""
        ...

    @property
    def media_idle_s(self) -> float:
        """Seconds the peer has sent no media while it should (its phone or browser may have vanished); 0
        while media flows, while on hold, or when the leg cannot tell."""
        ...

    def remove_sink(self, sink: AudioSink) -> None:
        """Stop giving audio to ``sink`` (nothing happens if it was not added)."""
        ...

    def add_mixer(self, mixer: AudioMixer) -> None:
        """Mix ``mixer``'s audio into everything written to the peer, frame by frame, until removed."""
        ...

    def remove_mixer(self, mixer: AudioMixer) -> None: ...

    def write(self, pcm: bytes) -> None:
        """Queue ``pcm`` for the peer without waiting (a live stream such as a bridge); a backlog above
        :data:`MAX_QUEUED_MS` is dropped first. Nothing happens unless the leg is answered."""
        ...

    async def write_audio(self, pcm: bytes) -> None:
        """Queue ``pcm`` for the peer; returns once no more than about :data:`PACED_MS` is queued."""
        ...

    @property
    def queued_ms(self) -> float:
        """Milliseconds of audio queued for the peer and not yet sent."""
        ...

    def clear_audio(self) -> None:
        """Drop what is queued for the peer (barge-in, a new bridge)."""
        ...

    def add_dtmf_listener(self, fn: KeyListener) -> None:
        """``fn(key)`` is called for every key the peer presses."""
        ...

    def remove_dtmf_listener(self, fn: KeyListener) -> None: ...

    @property
    def can_send_dtmf(self) -> bool:
        """Whether :meth:`send_dtmf` can reach the peer."""
        ...

    def send_dtmf(self, keys: str) -> None:
        """Send key presses to the peer. Raises :class:`CallError` if it cannot take any."""
        ...

    async def transfer(self, target: str) -> int:
        """Blind transfer to ``target``: the final status of the peer's new call. Raises :class:`CallError`
        if this leg cannot be transferred."""
        ...

    async def hangup(self) -> None:
        """End the call whatever its state."""
        ...

    async def wait_ended(self) -> str:
        """Wait for the end of the call; its reason."""
        ...


class LegBase:
    """The fan-out part of :class:`Leg`, shared by every leg: sinks, mixers and key listeners, the
    unpaced and paced writes over the leg's own output queue, and what follows from the state. A subclass
    sets the attributes below and implements ``_enqueue``, ``queued_ms`` and ``clear_audio``."""

    call_id: str
    channel: str
    caller: str | None
    dialled: str | None
    end_reason: str
    answered: asyncio.Event
    ended: asyncio.Event

    if TYPE_CHECKING:
        # Read-only here: a SIP leg reads it from its INVITE session, the other legs keep it as an attribute.
        @property
        def state(self) -> str: ...

    def __init__(self) -> None:
        self._sinks: list[AudioSink] = []
        self._mixers: list[AudioMixer] = []
        self._key_listeners: list[KeyListener] = []

    # --- what the peer says -----------------------------------------------------------------------------
    def add_sink(self, sink: AudioSink) -> None:
        """``sink`` gets every 20 ms the peer says while the leg is answered, until removed."""
        self._sinks.append(sink)

    def remove_sink(self, sink: AudioSink) -> None:
        """Stop giving audio to ``sink`` (nothing happens if it was not added)."""
        _discard(self._sinks, sink)

    def _audio_to_sinks(self, pcm: bytes) -> None:
        if self.state == "answered":
            _tell_each(self._sinks, pcm, "audio sink", self.call_id)

    @property
    def media_idle_s(self) -> float:
        """0: a leg that cannot tell whether its peer's media stopped (see :meth:`Leg.media_idle_s`)."""
        return 0.0

    # --- what the peer hears ----------------------------------------------------------------------------
    def add_mixer(self, mixer: AudioMixer) -> None:
        """Mix ``mixer``'s audio into everything written to the peer, frame by frame, until removed."""
        self._mixers.append(mixer)

    def remove_mixer(self, mixer: AudioMixer) -> None:
        _discard(self._mixers, mixer)

    def _mixed(self, pcm: bytes) -> bytes:
        for mixer in list(self._mixers):
            pcm = mix(pcm, mixer.next_audio(len(pcm)))
        return pcm

    def write(self, pcm: bytes) -> None:
        """Queue ``pcm`` for the peer without waiting; a backlog above :data:`MAX_QUEUED_MS` is dropped first."""
        if self.state != "answered":
            return
        if self.queued_ms > MAX_QUEUED_MS:
            self.clear_audio()
        self._enqueue(self._mixed(pcm))

    async def write_audio(self, pcm: bytes) -> None:
        """Queue ``pcm`` for the peer; returns once no more than about :data:`PACED_MS` is queued."""
        if self.state == "ended":
            return
        await self._enqueue_paced(self._mixed(pcm))

    async def _enqueue_paced(self, pcm: bytes) -> None:
        self._enqueue(pcm)
        # The leg's output drains every 20 ms; a short poll is finer than that.
        while self.queued_ms > PACED_MS and self.state != "ended":
            await asyncio.sleep(0.01)

    def _enqueue(self, pcm: bytes) -> None:
        raise NotImplementedError

    @property
    def queued_ms(self) -> float:
        raise NotImplementedError

    def clear_audio(self) -> None:
        raise NotImplementedError

    # --- keys -------------------------------------------------------------------------------------------
    def add_dtmf_listener(self, fn: KeyListener) -> None:
        """``fn(key)`` is called for every key the peer presses."""
        self._key_listeners.append(fn)

    def remove_dtmf_listener(self, fn: KeyListener) -> None:
        _discard(self._key_listeners, fn)

    def _tell_key_listeners(self, key: str) -> None:
        _tell_each(self._key_listeners, key, "key listener", self.call_id)

    @property
    def can_send_dtmf(self) -> bool:
        return False

    def send_dtmf(self, keys: str) -> None:
        """Send key presses to the peer. Raises :class:`CallError`: this leg cannot send any."""
        raise CallError(f"a {type(self).__name__} cannot send key presses")

    # --- the call ---------------------------------------------------------------------------------------
    async def hangup(self) -> None:
        raise NotImplementedError

    async def transfer(self, target: str) -> int:
        """Raises :class:`CallError`: this leg cannot be referred elsewhere (the queue dials and bridges)."""
        raise CallError(f"a {type(self).__name__} cannot be transferred by REFER")

    async def wait_ended(self) -> str:
        """Wait for the end of the call; its reason."""
        await self.ended.wait()
        return self.end_reason


def _discard(items: list[T], item: T) -> None:
    if item in items:  # removing what was never added (or already removed) is allowed
        items.remove(item)


def _tell_each(listeners: list[Callable[[T], None]], value: T, what: str, call_id: str) -> None:
    for listener in list(listeners):  # a copy: a listener may remove itself
        try:
            listener(value)
        except Exception:  # one broken listener must not keep the value from the others
            log.exception("call %s: %s failed", call_id, what)
