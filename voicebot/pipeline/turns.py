"""Caller turns: Silero VAD, speculative Whisper transcription in short pauses, end of turn, barge-in.

Why not pipecat's stock chain: its segmented STT transcribes one VAD segment at a time, so a 300 ms pause
splits a sentence and the first half can end the turn; Smart Turn often waits its 3 s fallback. Here one
utterance is all the speech up to a long enough silence, and the turn is released only with the
transcript of *all* of it. Transcription starts speculatively at the first short pause, so by the time
the silence is long enough to end the turn the text is usually ready. When no recognition is running in
the process, the speculation starts at an even shorter pause: on one call the end of turn waits for the
transcript, so every window sooner is a window off the reply; with many calls the recogniser is busy and
the shorter pause would only add speculations the caller talks over.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from audio import pcm
from voicebot import metrics
from voicebot.config import CallConfig
from voicebot.pipeline.frames import CallerTurnFrame, ExpectedAnswerFrame
from voicebot.pipeline.shared import SharedModels, Transcript
from voicebot.pipeline.vad import WINDOW, VoiceStream

log = logging.getLogger(__name__)

WINDOW_S = WINDOW / pcm.SAMPLE_RATE


@dataclass(frozen=True)
class TurnParams:
    """Timings of turn taking, in seconds."""

    vad_threshold: float = 0.5
    start_s: float = 0.096  # voiced audio before speech counts as started (and can barge in)
    pause_s: float = 0.16  # silence that starts a speculative transcription
    # ... when no recognition is running or queued in the process (set it to pause_s to always wait pause_s)
    idle_pause_s: float = 0.064
    end_of_turn_s: float = 0.45  # silence that ends a turn whose transcript ends a sentence
    end_of_turn_unpunctuated_s: float = 0.65  # ... whose transcript has no final punctuation
    end_of_turn_incomplete_s: float = 0.9  # silence that ends any turn ("I want to ... and", no transcript yet)
    preroll_s: float = 0.3  # audio kept from before the detected start (Silero reacts late)
    max_turn_s: float = 30.0
    barge_in: bool = True

    @classmethod
    def from_config(cls, call: CallConfig) -> TurnParams:
        """Timings from the ``call`` section: its end of turn, and the longer waits scaled with it."""
        base = call.end_of_turn_s
        return cls(
            end_of_turn_s=base,
            end_of_turn_unpunctuated_s=base + 0.2,
            end_of_turn_incomplete_s=base * 2,
            barge_in=call.barge_in,
        )


@dataclass
class PendingSpeech:
    """Audio of an utterance not yet released as a turn (the caller hung up in the middle of it)."""

    audio: bytes
    start: datetime


# A turn ending in one of these words is still going on, whatever the punctuation says.
_CONTINUATIONS = {"and", "or", "but", "so", "because", "the", "a", "an", "to", "my", "of", "with", "for", "is", "um", "uh"}


def end_of_turn_silence(text: str, params: TurnParams) -> float:
    """The silence after which a turn with this transcript is over.

    Short if the transcript ends a sentence; longer without final punctuation (Whisper sometimes omits
    it); longest if it trails off ("...", a comma) or ends on a word that needs more ("and", "my").
    """
    text = text.strip()
    words = re.findall(r"[a-z']+", text.lower())
    if not words or text.endswith(("...", "…", ",", "-")) or words[-1] in _CONTINUATIONS:
        return params.end_of_turn_incomplete_s
    if text[-1] in ".?!":
        return params.end_of_turn_s
    return params.end_of_turn_unpunctuated_s


class Recognitions:
    """Recognitions of caller turns submitted in this process and not finished: queued, or running in a thread
    (one its caller talked over runs on unused until it ends)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.count += n

    def start(self, shared: SharedModels, audio: bytes, expects: str | None) -> asyncio.Task[tuple[Transcript, float]]:
        """``shared.recognise`` in the inference pool (with its time in ms), counted from now until it ends, or
        until it is cancelled if it had not started."""
        lock = threading.Lock()
        started = cancelled = False

        def work() -> Transcript:
            nonlocal started
            with lock:
                if cancelled:
                    return Transcript("", 0.0)
                started = True
            try:
                return shared.recognise(audio, expects)
            finally:
                self.add(-1)

        async def timed() -> tuple[Transcript, float]:
            begun = time.perf_counter()
            transcript = await shared.run(work)
            return transcript, (time.perf_counter() - begun) * 1000

        def done(_: asyncio.Task) -> None:
            nonlocal cancelled
            with lock:
                if not started and not cancelled:
                    cancelled = True
                    self.add(-1)

        self.add(1)
        task = asyncio.ensure_future(timed())
        task.add_done_callback(done)
        return task


RECOGNITIONS = Recognitions()


def _result_text(task: asyncio.Task[tuple[Transcript, float]]) -> str:
    if task.cancelled() or task.exception() is not None:
        return ""
    return task.result()[0].text


class CallerTurnProcessor(FrameProcessor):
    """Turns 16 kHz caller audio into :class:`CallerTurnFrame` s; interrupts the bot when the caller talks.

    Pushes ``UserStartedSpeakingFrame`` when speech starts and ``UserStoppedSpeakingFrame`` when the turn
    ends. Audio frames are consumed here (nothing downstream needs them).
    """

    def __init__(
        self,
        shared: SharedModels,
        params: TurnParams | None = None,
        on_barge_in: Callable[[], Awaitable[None]] | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._shared = shared
        self._on_barge_in = on_barge_in
        self._p = params or TurnParams()
        self._vad = VoiceStream()
        self._resampler: pcm.StreamResampler | None = None
        self._windows = pcm.FrameSplitter(WINDOW * pcm.SAMPLE_WIDTH)
        self._ring: collections.deque[bytes] = collections.deque(maxlen=max(1, round(self._p.preroll_s / WINDOW_S)))
        self._start_windows = max(1, round(self._p.start_s / WINDOW_S))
        self._pause_windows = max(1, round(self._p.pause_s / WINDOW_S))
        self._idle_pause_windows = min(self._pause_windows, max(1, round(self._p.idle_pause_s / WINDOW_S)))
        self._eot_windows = max(self._pause_windows, round(self._p.end_of_turn_s / WINDOW_S))
        self._eot_max_windows = max(self._eot_windows, round(self._p.end_of_turn_incomplete_s / WINDOW_S))
        self._in_speech = False
        self._voiced_run = 0
        self._silence_run = 0
        self._utterance = bytearray()
        self._utt_start: datetime = datetime.now(UTC)
        self._speech_end = 0.0
        self._speculation: asyncio.Task[tuple[Transcript, float]] | None = None
        self.speculations = 0  # transcriptions started for the current utterance
        self._bot_speaking = False
        self._expects: str | None = None  # what the bot's last question asked for (ExpectedAnswerFrame)
        self._releases: asyncio.Task | None = None

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def pending_speech(self) -> PendingSpeech | None:
        """Speech the caller was in the middle of (for the record of a call that dropped)."""
        if not self._in_speech or pcm.duration_ms(self._utterance) < self._p.start_s * 1000:
            return None
        return PendingSpeech(bytes(self._utterance), self._utt_start)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            await self._on_audio(frame)
            return
        if isinstance(frame, ExpectedAnswerFrame):
            self._expects = frame.expects
            return
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, (EndFrame, CancelFrame)) and self._releases is not None:
            self._releases.cancel()
        await self.push_frame(frame, direction)

    async def _on_audio(self, frame: InputAudioRawFrame) -> None:
        audio = pcm.first_channel(frame.audio, frame.num_channels)
        if frame.sample_rate != pcm.SAMPLE_RATE:
            if self._resampler is None or self._resampler.rate != frame.sample_rate:
                self._resampler = pcm.StreamResampler(frame.sample_rate)
            audio = self._resampler.process(audio)
        for window in self._windows.feed(audio):
            await self._on_window(window)

    async def _on_window(self, window: bytes) -> None:
        confidence = self._vad.confidence(window)
        # Hysteresis: once in speech, weaker frames (word endings) still count as voice.
        threshold = self._p.vad_threshold - (0.15 if self._in_speech else 0.0)
        voiced = confidence >= threshold
        self._ring.append(window)
        if not self._in_speech:
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run >= self._start_windows:
                await self._speech_started()
            return
        self._utterance += window
        if voiced:
            self._silence_run = 0
            self._speech_end = time.monotonic()
            if self._speculation is not None:
                # The caller went on: that transcript would be of part of the utterance. One still queued for the
                # inference pool never runs (one already running finishes unused).
                self._speculation.cancel()
                self._speculation = None
            if pcm.duration_ms(self._utterance) >= self._p.max_turn_s * 1000:
                await self._turn_ended()
            return
        self._silence_run += 1
        if self._speculation is None and (
            self._silence_run >= self._pause_windows
            or (self._silence_run >= self._idle_pause_windows and RECOGNITIONS.count == 0)
        ):
            self._speculation = self._transcribe(bytes(self._utterance))
        if self._silence_run >= self._eot_max_windows:
            await self._turn_ended()
        elif self._silence_run >= self._eot_windows and self._speculation is not None and self._speculation.done():
            # Shorter silence: enough only if the transcript is in and reads as finished.
            needed = end_of_turn_silence(_result_text(self._speculation), self._p)
            if self._silence_run >= round(needed / WINDOW_S):
                await self._turn_ended()

    def _transcribe(self, audio: bytes) -> asyncio.Task[tuple[Transcript, float]]:
        self.speculations += 1
        return RECOGNITIONS.start(self._shared, audio, self._expects)

    async def _speech_started(self) -> None:
        self._in_speech = True
        self._voiced_run = 0
        self._silence_run = 0
        self._utterance = bytearray(b"".join(self._ring))
        self._utt_start = datetime.now(UTC) - timedelta(milliseconds=pcm.duration_ms(self._utterance))
        self._speech_end = time.monotonic()
        self._speculation = None
        self.speculations = 0
        await self.push_frame(UserStartedSpeakingFrame())
        if self._bot_speaking and self._p.barge_in:
            metrics.BARGE_INS.inc()
            await self.broadcast_interruption()
            if self._on_barge_in is not None:
                await self._on_barge_in()

    async def _turn_ended(self) -> None:
        self._in_speech = False
        speculation = self._speculation
        if speculation is None:
            # No pause preceded the end (max length reached): transcribe everything now.
            speculation = self._transcribe(bytes(self._utterance))
        self._speculation = None
        audio = bytes(self._utterance)
        start = self._utt_start
        speech_end = self._speech_end
        eot_at = time.monotonic()
        end = datetime.now(UTC) - timedelta(seconds=self._silence_run * WINDOW_S)
        self._ring.clear()
        await self.push_frame(UserStoppedSpeakingFrame())
        previous = self._releases
        self._releases = asyncio.ensure_future(
            self._release(previous, speculation, audio, start, end, speech_end, eot_at, self.speculations)
        )

    async def _release(
        self,
        previous: asyncio.Task | None,
        transcription: asyncio.Future[tuple[Transcript, float]],
        audio: bytes,
        start: datetime,
        end: datetime,
        speech_end: float,
        eot_at: float,
        speculations: int,
    ) -> None:
        # Turns leave in the order they were spoken even if a later transcript is ready first.
        if previous is not None and not previous.done():
            await asyncio.shield(previous)
        failed = False
        try:
            transcript, stt_ms = await transcription
        except Exception:  # the turn still reaches the dialog, which apologises: the caller is not left in silence
            log.exception("%s: transcribing a caller turn failed", self)
            transcript, stt_ms, failed = Transcript("", 0.0), 0.0, True
        released = time.monotonic()
        await self.push_frame(
            CallerTurnFrame(
                text=transcript.text,
                start=start,
                end=end,
                speech_end=speech_end,
                released=released,
                stt_ms=stt_ms,
                stt_wait_ms=max(0.0, (released - eot_at) * 1000),
                speculations=speculations,
                audio=audio,
                transcription_failed=failed,
                confidence=None if failed else transcript.confidence,
                rejected=transcript.rejected,
                alternatives=transcript.alternatives,
                words=transcript.words,
                foreign_reading=transcript.foreign_reading,
                heard_by=transcript.heard_by,
                heard_by_because=transcript.recovered_from if transcript.heard_by else None,
            )
        )

