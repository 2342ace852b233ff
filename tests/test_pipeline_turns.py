"""Caller turns without a network: real Silero VAD and real Whisper (tiny.en: this is about turns, not
recognition) over synthesised speech.

Audio is fed as fast as the processor takes it; the turn logic counts 32 ms windows, not wall time,
so where a turn ends depends only on the audio.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from call_models import CALL_FLOW_MODELS
from pipecat.frames.frames import Frame, InputAudioRawFrame, UserStartedSpeakingFrame

from audio.speech import espeak_ng
from voicebot.config import Settings
from voicebot.pipeline import turns as turns_module
from voicebot.pipeline.frames import CallerTurnFrame
from voicebot.pipeline.shared import SharedModels, Transcript
from voicebot.pipeline.turns import CallerTurnProcessor, Recognitions

RATE = 16000


@pytest.fixture(scope="module")
def shared():
    models = SharedModels.load(Settings(models=CALL_FLOW_MODELS))
    yield models
    models.close()


def speech(text: str) -> np.ndarray:
    samples, _ = espeak_ng(text, sample_rate=RATE)
    return samples


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def run_turns(shared: SharedModels, audio: np.ndarray, fed: Callable[[], object] | None = None,
              prepare: Callable[[CallerTurnProcessor], object] | None = None) -> tuple[list[Frame], CallerTurnProcessor]:
    """Feed ``audio`` in 20 ms frames, then call ``fed``; the frames the processor pushed, once every turn is
    released. ``prepare`` gets the processor before any audio."""
    processor = CallerTurnProcessor(shared)
    if prepare is not None:
        prepare(processor)
    pushed: list[Frame] = []

    async def collect(frame: Frame, direction=None) -> None:
        pushed.append(frame)

    processor.push_frame = collect  # type: ignore[method-assign]

    async def feed() -> None:
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
        step = RATE // 50 * 2
        for i in range(0, len(pcm), step):
            await processor._on_audio(InputAudioRawFrame(audio=pcm[i : i + step], sample_rate=RATE, num_channels=1))
        if fed is not None:
            fed()
        if processor._releases is not None:
            await processor._releases

    asyncio.run(feed())
    return pushed, processor


def turns(pushed: list[Frame]) -> list[CallerTurnFrame]:
    return [f for f in pushed if isinstance(f, CallerTurnFrame)]


def test_a_pause_inside_a_sentence_does_not_split_the_turn(shared):
    audio = np.concatenate(
        [silence(0.5), speech("I want to check my order"), silence(0.3), speech("and change my address."), silence(1.5)]
    )
    pushed, _ = run_turns(shared, audio)
    found = turns(pushed)
    assert len(found) == 1, [t.text for t in found]
    text = found[0].text.lower()
    assert "order" in text and "address" in text
    assert found[0].audio and found[0].start is not None and found[0].end is not None
    assert sum(isinstance(f, UserStartedSpeakingFrame) for f in pushed) == 1
    assert found[0].speculations >= 2  # at least one at the pause (the caller went on), one at the end


def test_two_turns_come_out_in_order(shared):
    audio = np.concatenate(
        [silence(0.3), speech("Where is my order?"), silence(1.5), speech("I forgot my password."), silence(1.5)]
    )
    found = turns(run_turns(shared, audio)[0])
    assert len(found) == 2
    assert "order" in found[0].text.lower()
    assert "password" in found[1].text.lower()


def test_silence_makes_no_turn(shared):
    pushed, processor = run_turns(shared, silence(3.0))
    assert turns(pushed) == []
    assert processor.pending_speech() is None


def test_speech_cut_off_is_pending_for_the_record(shared):
    pushed, processor = run_turns(shared, np.concatenate([silence(0.3), speech("I would like to return the blue")]))
    assert turns(pushed) == []
    pending = processor.pending_speech()
    assert pending is not None
    assert len(pending.audio) > RATE  # more than half a second of 16-bit audio


class QueuedRecogniser:
    """The two things turn taking uses of SharedModels, over a one-thread pool that a test can hold busy (other
    calls' recognitions); what each recognition was given is kept."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.heard: list[int] = []

    async def run(self, func, *args):  # type: ignore[no-untyped-def]
        return await asyncio.get_running_loop().run_in_executor(self.pool, func, *args)

    def recognise(self, audio: bytes, expects: str | None = None) -> Transcript:
        self.heard.append(len(audio))
        return Transcript("I want to check my order and change my address.", 0.9)


@pytest.fixture
def recognitions(monkeypatch: pytest.MonkeyPatch) -> Recognitions:
    """The process's count of recognitions, fresh (an earlier test's abandoned speculation may still be running)."""
    fresh = Recognitions()
    monkeypatch.setattr(turns_module, "RECOGNITIONS", fresh)
    return fresh


def test_a_speculation_the_caller_talked_over_is_not_run_if_it_has_not_started(recognitions):
    audio = np.concatenate(
        [silence(0.5), speech("I want to check my order"), silence(0.3), speech("and change my address."), silence(1.5)]
    )
    recogniser = QueuedRecogniser()
    busy = threading.Event()
    recogniser.pool.submit(busy.wait, 30)  # the pool is busy while the caller speaks, pauses and goes on
    pushed, _ = run_turns(recogniser, audio, fed=busy.set)  # type: ignore[arg-type]
    recogniser.pool.shutdown()
    assert len(turns(pushed)) == 1
    # One recognition, of both clauses (the turn's audio less the silence that ended it): the speculation of the
    # first clause alone was cancelled before it started.
    assert len(recogniser.heard) == 1
    assert 0.75 * len(turns(pushed)[0].audio) < recogniser.heard[0] < len(turns(pushed)[0].audio)
    assert recognitions.count == 0  # the cancelled one is no longer counted as queued


def speculation_starts(processor: CallerTurnProcessor) -> list[int]:
    """Where each transcription of ``processor`` starts: the windows of silence before it."""
    starts: list[int] = []
    transcribe = processor._transcribe

    def spy(audio: bytes):  # type: ignore[no-untyped-def]
        starts.append(processor._silence_run)
        return transcribe(audio)

    processor._transcribe = spy  # type: ignore[method-assign]
    return starts


def test_speculation_waits_for_the_longer_pause_while_other_calls_are_recognised(recognitions):
    audio = np.concatenate([silence(0.3), speech("Where is my order?"), silence(1.5)])
    found: dict[int, list[int]] = {}

    def spy_on(busy: int) -> Callable[[CallerTurnProcessor], None]:
        return lambda processor: found.update({busy: speculation_starts(processor)})

    for busy in (0, 1):
        recogniser = QueuedRecogniser()
        recognitions.add(busy)  # another call's recognition, queued or running
        try:
            pushed, _ = run_turns(recogniser, audio, prepare=spy_on(busy))  # type: ignore[arg-type]
        finally:
            recognitions.add(-busy)
            recogniser.pool.shutdown()
        assert len(turns(pushed)) == 1 and turns(pushed)[0].speculations == 1
        assert len(recogniser.heard) == 1
    assert found == {0: [2], 1: [5]}  # TurnParams: idle_pause_s 0.064 s, pause_s 0.16 s (32 ms windows)
    assert recognitions.count == 0
