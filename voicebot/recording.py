"""Call recording with consent: both sides of a call in one stereo WAV, the caller left, bot and agent right.

The recorder is a sink of the call's audio where listen-in gets it (:mod:`voicebot.monitor`: the pipeline's
taps feed ``caller`` and ``bot``, the agent bridge ``caller`` and ``agent``), so a SIP and a browser call, the
bot's part and the agent's, are recorded the same way. Feeding never waits: chunks go into a queue and one
writer thread per call places them on the call's time line and writes the file.

Time alignment: each source's audio is placed where it was heard, by the clock at which it was fed (its end is
"now"), and runs on contiguously from its previous chunk while it keeps up (a burst, jitter); a source that
fell silent longer than :data:`GAP_S` restarts at its arrival time. What no source filled is silence, so the two
channels stay aligned however the audio arrived. The file is written :data:`DELAY_S` behind the clock, and is
never longer than ``max_s`` (the call's maximum length).

The file is created readable by this user only (0600), in ``recording.folder``. A decline (the dialog's
``BotReply.recording_declined``) stops the recording and deletes the file; the call's record keeps that the
caller declined and when (:class:`voicebot.storage.CallStore`). A recording left open by a process that died is
closed when its call's record is (``CallStore.close_stale``): kept as ``interrupted`` (the file made readable by
:func:`repair_wav`) if the caller had heard the announcement, else deleted as ``unannounced``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import re
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from audio.pcm import FRAME_SAMPLES, SAMPLE_RATE, SAMPLE_WIDTH, to_int16
from voicebot.monitor import MONITORS, Monitors

if TYPE_CHECKING:
    from voicebot.config import Settings
    from voicebot.storage import CallStore

log = logging.getLogger(__name__)

LEFT_SOURCES = frozenset({"caller"})  # bot and agent go right
GAP_S = 0.12  # a source this far behind the clock starts again where it is heard, not where it stopped
AHEAD_S = 1.0  # a source this far ahead of the clock (fed twice, e.g.) is put back where it is heard
DELAY_S = 0.4  # audio is written this long after it was due: late chunks still find their place
_GAP = int(GAP_S * SAMPLE_RATE)
_AHEAD = int(AHEAD_S * SAMPLE_RATE)
_POLL_S = 0.1


@dataclass(frozen=True)
class RecordedFile:
    """A finished recording: its file, size in bytes and length."""

    path: Path
    size: int
    duration_s: float


class StereoRecorder:
    """Writes one call's stereo WAV from the audio pushed to it (an :class:`voicebot.monitor.AudioSink`).

    :meth:`start` creates the file (0600; it must not exist) and the writer thread; :meth:`push` never blocks;
    :meth:`stop` writes what is left and closes the file; :meth:`discard` stops and deletes it.
    """

    def __init__(self, path: Path, max_s: float, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.max_samples = int(max_s * SAMPLE_RATE)
        self._clock = clock
        self._queue: queue.SimpleQueue[tuple[str, float, bytes] | None] = queue.SimpleQueue()
        self._t0 = 0.0
        self._open = False
        self._thread: threading.Thread | None = None
        self._wav: wave.Wave_write | None = None
        self._file: BinaryIO | None = None
        self._written = 0  # samples per channel in the file
        self._pending = [np.zeros(0, np.int32), np.zeros(0, np.int32)]  # left, right from _written on
        self._cursor: dict[str, int] = {}  # where each source's next chunk goes on its own
        self._keep = True  # False: the last flush is skipped (discard)

    def start(self) -> None:
        """Create the file and start writing; the call's time line starts now."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        fh = os.fdopen(fd, "wb")
        wav = wave.open(fh, "wb")  # noqa: SIM115  (open for the call's length; the writer thread closes it)
        wav.setnchannels(2)
        wav.setsampwidth(SAMPLE_WIDTH)
        wav.setframerate(SAMPLE_RATE)
        self._file, self._wav = fh, wav
        self._t0 = self._clock()
        self._open = True
        self._thread = threading.Thread(target=self._run, name=f"recorder-{self.path.stem}", daemon=True)
        self._thread.start()

    def push(self, source: str, pcm: bytes) -> None:
        """``pcm`` (16 kHz 16-bit mono) of ``source`` heard now; ignored once stopped."""
        if self._open and pcm:
            self._queue.put((source, self._clock(), pcm))

    def stop(self) -> RecordedFile:
        """Write what is left (up to now) and close the file."""
        self._finish(keep=True)
        return RecordedFile(self.path, self.path.stat().st_size, self._written / SAMPLE_RATE)

    def discard(self) -> None:
        """Stop without writing more and delete the file."""
        self._finish(keep=False)
        self.path.unlink(missing_ok=True)

    @property
    def duration_s(self) -> float:
        return self._written / SAMPLE_RATE

    # --- the writer thread ----------------------------------------------------------------------------------
    def _finish(self, keep: bool) -> None:
        if not self._open:
            return
        self._open = False
        self._keep = keep
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        try:
            stopped = False
            while not stopped:
                try:
                    first = self._queue.get(timeout=_POLL_S)
                except queue.Empty:
                    first = ("", 0.0, b"")
                # The clock before the queue is drained: every chunk heard before it is placed before the flush.
                now = self._clock()
                stopped = self._place_all(first)
                if not stopped:
                    self._flush(self._position(now) - int(DELAY_S * SAMPLE_RATE))
            if self._keep:
                self._flush(max([self._position(self._clock()), *self._cursor.values()]))
        except Exception:
            log.exception("recording %s failed; it ends here", self.path.name)
        finally:
            assert self._wav is not None
            self._wav.close()
            if self._file is not None:
                self._file.close()

    def _place_all(self, item: tuple[str, float, bytes] | None) -> bool:
        """Place ``item`` and every chunk queued behind it; True once the stop was among them."""
        while True:
            if item is None:
                return True
            if item[2]:
                self._place(*item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False

    def _position(self, t: float) -> int:
        return int((t - self._t0) * SAMPLE_RATE)

    def _place(self, source: str, t: float, pcm: bytes) -> None:
        samples = to_int16(pcm[: len(pcm) - len(pcm) % SAMPLE_WIDTH]).astype(np.int32)
        n = len(samples)
        due = self._position(t) - n  # the chunk ends now
        start = self._cursor.get(source, due)
        if start < due - _GAP or start > due + _AHEAD:
            start = due  # the source fell silent (or runs ahead): it starts again where it is heard
        start = max(start, self._written)  # too late for the file: right after it
        self._cursor[source] = start + n
        if start >= self.max_samples:
            return
        samples = samples[: self.max_samples - start]
        channel = 0 if source in LEFT_SOURCES else 1
        offset = start - self._written
        end = offset + len(samples)
        pending = self._pending[channel]
        if len(pending) < end:
            pending = self._pending[channel] = np.concatenate([pending, np.zeros(end - len(pending), np.int32)])
        pending[offset:end] += samples

    def _flush(self, upto: int) -> None:
        """Write both channels up to sample ``upto`` (silence where nothing was heard), whole 20 ms frames."""
        upto = min(upto, self.max_samples)
        if upto >= self.max_samples:
            count = upto - self._written
        else:
            count = (upto - self._written) // FRAME_SAMPLES * FRAME_SAMPLES
        if count <= 0:
            return
        channels = []
        for i, pending in enumerate(self._pending):
            if len(pending) < count:
                pending = np.concatenate([pending, np.zeros(count - len(pending), np.int32)])
            channels.append(pending[:count])
            self._pending[i] = pending[count:]
        stereo = np.clip(np.stack(channels, axis=1), -32768, 32767).astype("<i2")
        assert self._wav is not None
        self._wav.writeframes(stereo.tobytes())
        self._written += count


def repair_wav(path: Path) -> RecordedFile | None:
    """Make a WAV left by a killed process readable: the lengths in its header set to the whole frames the file
    holds (a ``kill -9`` or a power cut leaves them as of some earlier write, a frame may be cut short). None when
    there is no such file or it holds no WAV header (the process died before its first write)."""
    try:
        with open(path, "r+b") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = rate = 0
            pos = 12
            while True:  # the chunks up to "data" (ours: "fmt " only, but a WAV may hold others)
                fh.seek(pos)
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                name, length = chunk[:4], int.from_bytes(chunk[4:], "little")
                if name == b"data":
                    break
                if name == b"fmt ":
                    fmt = fh.read(16)
                    if len(fmt) < 16:
                        return None
                    rate = int.from_bytes(fmt[4:8], "little")
                    block_align = int.from_bytes(fmt[12:14], "little")
                pos += 8 + length + length % 2
            if not block_align or not rate:
                return None
            start = pos + 8
            size = os.fstat(fh.fileno()).st_size
            data = max(0, size - start) // block_align * block_align
            fh.truncate(start + data)
            fh.seek(4)
            fh.write((start - 8 + data).to_bytes(4, "little"))
            fh.seek(pos + 4)
            fh.write(data.to_bytes(4, "little"))
    except FileNotFoundError:
        return None
    return RecordedFile(path, start + data, data / block_align / rate)


def recording_path(folder: Path, call_id: str, now: datetime) -> Path:
    """Where a call's recording goes: ``folder/YYYY-MM-DD/<call id>.wav`` (the id made safe as a file name)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", call_id)[:120] or "call"
    return folder / now.strftime("%Y-%m-%d") / f"{safe}.wav"


class CallRecording:
    """The recording of one call: a sink of its audio (``monitors``), its file and its row in ``store``.

    ``start`` begins (after the call's record is opened), ``decline`` stops and deletes it for good, ``finish``
    completes it when the call is over. Each is safe to call more than once and in any order after ``start``.
    """

    def __init__(self, call_id: str, path: Path, max_s: float, store: CallStore, monitors: Monitors = MONITORS):
        self.call_id = call_id
        self.store = store
        self.recorder = StereoRecorder(path, max_s)
        self.monitors = monitors
        self.state = "new"  # new | recording | declined | finished

    async def start(self) -> None:
        if self.state != "new":
            return
        try:
            await asyncio.to_thread(self.recorder.start)
        except OSError as exc:  # a full disk, a folder not writable: the call goes on unrecorded
            log.error("call %s: cannot record to %s: %s", self.call_id, self.recorder.path, exc)
            self.state = "finished"
            return
        self.state = "recording"
        self.monitors.add_sink(self.call_id, self.recorder)
        await self.store.arun("open_recording", self.call_id, str(self.recorder.path))

    async def decline(self) -> None:
        """The caller declined: nothing more is recorded, what was is deleted, the record says so."""
        if self.state == "declined":
            return
        was_recording = self.state == "recording"
        self.state = "declined"
        self.monitors.remove_sink(self.call_id, self.recorder)
        if was_recording:
            await asyncio.to_thread(self.recorder.discard)
        await self.store.arun("decline_recording", self.call_id)
        log.info("call %s: the caller declined the recording; deleted", self.call_id)

    async def finish(self) -> None:
        """The call is over: complete the file and its record."""
        if self.state != "recording":
            return
        self.state = "finished"
        self.monitors.remove_sink(self.call_id, self.recorder)
        done = await asyncio.to_thread(self.recorder.stop)
        await self.store.arun("close_recording", self.call_id, done.size, done.duration_s)


def call_recording(settings: Settings, store: CallStore, call_id: str) -> CallRecording | None:
    """The recording of a new call by ``settings`` (``recording``), or None when recording is off."""
    cfg = settings.recording
    if not cfg.enabled:
        return None
    folder = settings.resolve(Path(cfg.folder))
    assert folder is not None
    return CallRecording(call_id, recording_path(folder, call_id, datetime.now(UTC)),
                         settings.call.max_duration_s, store)
