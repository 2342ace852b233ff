"""A reply's dialog turn and speech do not wait for the inference pool (voicebot.pipeline.lanes): with every
inference thread busy (other callers' recognitions), a call still gets its answer and its audio. Real Piper,
real dialog engine over the demo database."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from call_models import CALL_FLOW_MODELS
from dialog_helpers import demo_engine, train_bundled
from pipecat.frames.frames import Frame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameDirection

from dialogs.engine import Turn
from voicebot.config import Settings
from voicebot.pipeline.call import CallContext
from voicebot.pipeline.frames import BotSayFrame
from voicebot.pipeline.shared import SharedModels
from voicebot.pipeline.tts import PiperSpeech
from voicebot.storage import CallStore


@pytest.fixture(scope="module")
def shared():
    models = SharedModels.load(Settings(models=CALL_FLOW_MODELS))
    yield models
    models.close()


@pytest.fixture()
def busy_pool(shared):
    """Every thread of the inference pool held by a job that ends when the test does."""
    release = threading.Event()
    started = threading.Barrier(shared.settings.models.workers + 1)

    def hold() -> None:
        started.wait(10)
        release.wait(60)

    jobs = [shared.executor.submit(hold) for _ in range(shared.settings.models.workers)]
    started.wait(10)
    yield
    release.set()
    for job in jobs:
        job.result(10)


def test_a_dialog_turn_is_answered_while_every_inference_thread_is_busy(shared, busy_pool, tmp_path: Path):
    engine = demo_engine(train_bundled(), tmp_path, seed=3)
    store = CallStore(engine.database.engine)
    session = engine.new_call(channel="sip", caller_id="+15551230001", call_id="call-busy")
    call = CallContext("call-busy", "sip", "+15551230001", session, store, shared)

    async def talk() -> str:
        await asyncio.wait_for(call.start_dialog(), 30)
        reply = await asyncio.wait_for(call.handle(Turn(text="Where is my order?")), 30)
        return reply.text

    assert "confirm who you are" in asyncio.run(talk())
    store.close()
    engine.database.dispose()


def test_a_reply_is_synthesised_while_every_inference_thread_is_busy(shared, busy_pool):
    class NoCall:  # PiperSpeech's use of the call: the turns it plays
        call_id = "call-busy"
        playing: set[int] = set()

        async def update_turn(self, turn_id, **fields):  # type: ignore[no-untyped-def]
            pass

    speech = PiperSpeech(shared, NoCall(), Settings().models.tts)  # type: ignore[arg-type]
    audio: list[TTSAudioRawFrame] = []

    async def collect(frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if isinstance(frame, TTSAudioRawFrame):
            audio.append(frame)

    speech.push_frame = collect  # type: ignore[method-assign]
    now = datetime.now(UTC)
    say = BotSayFrame(text=f"Your order shipped at {now:%H:%M:%S}. It arrives tomorrow.", kind="reply")
    asyncio.run(asyncio.wait_for(speech._speak(say), 30))
    assert len(audio) == 2 and all(len(a.audio) > 0 for a in audio)
