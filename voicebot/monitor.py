"""Listening in on live calls: the audio of each call, mixed for the supervisors who listen to it.

Taps in the call feed :data:`MONITORS` with 16 kHz 16-bit mono PCM of each source: ``caller`` (what the caller
says), ``bot`` (what the bot says) and, once bridged to a human, ``agent``; a supervisor who joined the call is a
source of its own for the other listeners only (:meth:`Monitors.feed_listeners`). Each listener (one supervisor's
connection) keeps a short buffer per source and reads 20 ms at a time: the sources' next 20 ms summed, with
clipping. A source whose frame arrives after the caller's (the bot's audio leaves the output transport on its
own clock) is still mixed: it waits in its buffer for the next read.

Feeding never waits: with no listener on a call :meth:`Monitors.feed` returns at once, and a listener that stops
reading loses its oldest audio (each buffer holds at most :data:`MAX_BUFFER_MS`) instead of slowing the call.

Other consumers of a call's audio (the call recorder, :mod:`voicebot.recording`) add themselves as sinks
(:meth:`Monitors.add_sink`): they get every source's audio as it is fed, until they remove themselves.

A call is *live* while something holds it (:meth:`Monitors.holding`: the bot's pipeline, then the agent queue
for a handed-over call); when the last hold ends, every listener of the call is closed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np

from audio.pcm import BYTES_PER_MS, FRAME_BYTES, FRAME_SAMPLES, SAMPLE_WIDTH, to_int16

log = logging.getLogger(__name__)

SOURCES = ("caller", "bot", "agent")
MAX_BUFFER_MS = 240
KEEP_MS = 60  # what is left of an overfull buffer: the newest audio, a little ahead of the reader
_MAX_BYTES = MAX_BUFFER_MS * BYTES_PER_MS
_KEEP_BYTES = KEEP_MS * BYTES_PER_MS


class AudioSink(Protocol):
    """Takes a call's audio as it is fed: ``pcm`` (16 kHz 16-bit mono) of ``source``. Must not block."""

    def push(self, source: str, pcm: bytes) -> None: ...


class NotLive(LookupError):
    """The call is not in progress (never was, or has ended)."""


class Listener:
    """One supervisor's ear on one call. :meth:`read` returns the next 20 ms of the mix; ``on_end`` is called
    once (from whichever thread ends it) when the call ends or the listener is removed."""

    def __init__(self, call_id: str, on_end: Callable[[], None] | None = None):
        self.call_id = call_id
        self.on_end = on_end
        self.ended = False
        self.dropped_ms = 0  # audio thrown away because the reader fell behind
        self._buffers: dict[str, bytearray] = {source: bytearray() for source in SOURCES}
        self._lock = threading.Lock()

    def push(self, source: str, pcm: bytes) -> None:
        """Add ``pcm`` of ``source``; never blocks (an overfull buffer keeps only its newest audio)."""
        with self._lock:
            buf = self._buffers.get(source)
            if buf is None:  # a supervisor who joined the call: a source of its own
                buf = self._buffers[source] = bytearray()
            buf.extend(pcm)
            if len(buf) > _MAX_BYTES:
                cut = len(buf) - _KEEP_BYTES
                cut -= cut % SAMPLE_WIDTH
                del buf[:cut]
                self.dropped_ms += cut // BYTES_PER_MS

    def read(self) -> bytes:
        """The next 20 ms: each source's next 20 ms summed and clipped to 16 bits. A source with less than
        20 ms buffered adds nothing this time (its audio waits for the next read)."""
        frames = []
        with self._lock:
            for buf in self._buffers.values():
                if len(buf) >= FRAME_BYTES:
                    frames.append(bytes(buf[:FRAME_BYTES]))
                    del buf[:FRAME_BYTES]
        return mix(frames)

    def end(self) -> None:
        """Stop listening; calls ``on_end`` the first time."""
        with self._lock:
            if self.ended:
                return
            self.ended = True
            for buf in self._buffers.values():
                buf.clear()
        if self.on_end is not None:
            try:
                self.on_end()
            except Exception:
                log.exception("call %s: closing a listener failed", self.call_id)


def mix(frames: list[bytes]) -> bytes:
    """Sum frames of call audio with clipping once at the end (``audio.pcm.mix`` clips each pair); silence when
    there are none."""
    if not frames:
        return bytes(FRAME_BYTES)
    if len(frames) == 1:
        return frames[0]
    total = np.zeros(FRAME_SAMPLES, dtype=np.int32)
    for frame in frames:
        total += to_int16(frame)
    return np.clip(total, -32768, 32767).astype("<i2").tobytes()


class Monitors:
    """The live calls of the process and who listens to them. Thread-safe; ``feed`` may come from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holds: dict[str, int] = {}
        self._listeners: dict[str, tuple[Listener, ...]] = {}
        self._sinks: dict[str, tuple[AudioSink, ...]] = {}

    # --- the call side --------------------------------------------------------------------------------------
    def feed(self, call_id: str, source: str, pcm16k: bytes) -> None:
        """``pcm16k`` (16 kHz 16-bit mono) of ``source`` (caller, bot or agent) goes to every listener and sink
        of the call; returns at once when there is none."""
        listeners = self._listeners.get(call_id)  # one dict read each: the common case costs nothing more
        sinks = self._sinks.get(call_id)
        if listeners:
            for listener in listeners:
                listener.push(source, pcm16k)
        if sinks:
            for sink in sinks:
                sink.push(source, pcm16k)

    def feed_listeners(self, call_id: str, source: str, pcm16k: bytes, *, skip: Listener | None = None) -> None:
        """``pcm16k`` of ``source`` goes to the call's listeners but ``skip`` (the speaker's own ear), not to its
        sinks: what a supervisor who joined the call says is heard by the other supervisors, not recorded."""
        for listener in self._listeners.get(call_id, ()):
            if listener is not skip:
                listener.push(source, pcm16k)

    def listening(self, call_id: str) -> bool:
        """Whether anybody listens to or records ``call_id`` (taps skip their resampling when not)."""
        return bool(self._listeners.get(call_id) or self._sinks.get(call_id))

    def add_sink(self, call_id: str, sink: AudioSink) -> None:
        """``sink`` gets the call's audio from now on (whether or not the call is live yet)."""
        with self._lock:
            self._sinks[call_id] = (*self._sinks.get(call_id, ()), sink)

    def remove_sink(self, call_id: str, sink: AudioSink) -> None:
        """``sink`` gets no more of the call's audio (nothing if it had none)."""
        with self._lock:
            rest = tuple(x for x in self._sinks.get(call_id, ()) if x is not sink)
            if rest:
                self._sinks[call_id] = rest
            else:
                self._sinks.pop(call_id, None)

    def begin(self, call_id: str) -> None:
        """Something holds the call (it is live until every :meth:`begin` has its :meth:`end`)."""
        with self._lock:
            self._holds[call_id] = self._holds.get(call_id, 0) + 1

    def end(self, call_id: str) -> None:
        """Release one hold; the last one ends the call for its listeners."""
        with self._lock:
            left = self._holds.get(call_id, 0) - 1
            if left > 0:
                self._holds[call_id] = left
                return
            self._holds.pop(call_id, None)
            listeners = self._listeners.pop(call_id, ())
        for listener in listeners:
            listener.end()

    @contextmanager
    def holding(self, call_id: str) -> Iterator[None]:
        """The call is live for the duration of the block."""
        self.begin(call_id)
        try:
            yield
        finally:
            self.end(call_id)

    def is_live(self, call_id: str) -> bool:
        return call_id in self._holds

    # --- the supervisor side -------------------------------------------------------------------------------
    def listen(self, call_id: str, on_end: Callable[[], None] | None = None) -> Listener:
        """A new listener of ``call_id``; raises :class:`NotLive` if the call is not in progress."""
        listener = Listener(call_id, on_end)
        with self._lock:
            if call_id not in self._holds:
                raise NotLive(call_id)
            self._listeners[call_id] = (*self._listeners.get(call_id, ()), listener)
        return listener

    def remove(self, listener: Listener) -> None:
        """Stop ``listener`` (its ``on_end`` is called if it had not ended yet)."""
        with self._lock:
            rest = tuple(x for x in self._listeners.get(listener.call_id, ()) if x is not listener)
            if rest:
                self._listeners[listener.call_id] = rest
            else:
                self._listeners.pop(listener.call_id, None)
        listener.end()


MONITORS = Monitors()
"""The one registry of the process: the call pipeline, the agent queue and the listen API share it."""
