"""Caller turns without a network: real Silero VAD and real Whisper (tiny.en: this is about turns, not
recognition) over synthesised speech.

Audio is fed as fast as the processor takes it; the turn logic counts 32 ms windows, not wall time,
so where a turn ends depends only on the audio.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from call_models import CALL_FLOW_MODELS
from pipecat.frames.frames import Frame, InputAudioRawFrame, UserStartedSpeakingFrame

from audio.speech import espeak_ng
from voicebot.config import Settings
from voicebot.pipeline.frames import CallerTurnFrame
from voicebot.pipeline.shared import SharedModels
from voicebot.pipeline.turns import CallerTurnProcessor

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


def run_turns(shared: SharedModels, audio: np.ndarray) -> tuple[list[Frame], CallerTurnProcessor]:
    """Feed ``audio`` in 20 ms frames; the frames the processor pushed, once every turn is released."""
    processor = CallerTurnProcessor(shared)
    pushed: list[Frame] = []

    async def collect(frame: Frame, direction=None) -> None:
        pushed.append(frame)

    processor.push_frame = collect  # type: ignore[method-assign]

    async def feed() -> None:
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
        step = RATE // 50 * 2
        for i in range(0, len(pcm), step):
            await processor._on_audio(InputAudioRawFrame(audio=pcm[i : i + step], sample_rate=RATE, num_channels=1))
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
