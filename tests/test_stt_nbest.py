"""The recogniser's alternatives: a second, beam-search pass over an unsure reading, and the NLU choosing among
the readings (dialogs/nlu/nbest.py). Real NLU trained on the bundled domain; real Whisper on espeak-ng speech."""

from __future__ import annotations

import pytest

from audio import pcm
from audio.speech import espeak_ng
from dialogs.nlu.nbest import Hypothesis, choose, nlu_certainty
from voicebot.config import Settings
from voicebot.phone_speech import phone_line
from voicebot.pipeline.shared import SharedModels
from voicebot.stt_evaluation import to_pcm16


def test_the_reading_the_nlu_understands_wins_over_a_likelier_garble(nlu) -> None:
    # A garble the NLU is unsure of (below FIRST_SURE): "I will charge wife" is in the heard training data, so it
    # now reads as a billing question surely and rightly stands as the recogniser's own best.
    readings = [Hypothesis("Eye wise hard twice for the same order", -0.3),
                Hypothesis("I was charged twice for the same order", -0.45)]
    choice = choose(readings, nlu.parse)
    assert choice.index == 1 and choice.text == readings[1].text, choice
    assert choice.support[1] > choice.support[0]
    assert choice.intents[1] == ("billing_question",), choice


def test_the_recognisers_own_best_wins_a_tie_and_an_all_unknown_field(nlu) -> None:
    same = [Hypothesis("where is my order", -0.2), Hypothesis("where is my order", -0.2)]
    assert choose(same, nlu.parse).index == 0
    nonsense = [Hypothesis("purple elephants sing", -0.2), Hypothesis("banana piano", -0.1)]
    choice = choose(nonsense, nlu.parse)
    assert choice.index == 0 and choice.support == (0.0, 0.0)
    assert nlu_certainty(nlu.parse("purple elephants sing")) == 0.0


def test_a_much_less_likely_reading_needs_much_more_nlu_support(nlu) -> None:
    readings = [Hypothesis("where is my order", -0.1), Hypothesis("where is my order please", -3.0)]
    assert choose(readings, nlu.parse).index == 0


def test_a_reading_that_lost_a_request_never_wins_and_a_sure_first_reading_stands() -> None:
    """The NLU's parses are given here so the rule itself is visible: certainty of what is left would favour
    the reading that dropped a request."""
    from dialogs.nlu.parser import IntentHit, ParseResult

    parses = {
        "track it and refund the rest": [IntentHit("order_status", 0.7), IntentHit("billing_question", 0.6)],
        "track it": [IntentHit("order_status", 0.99)],
        "where is my order": [IntentHit("order_status", 0.9)],
    }

    def parse(text: str) -> ParseResult:
        return ParseResult(text, text, parses[text], [], {}, [], [])

    lost = [Hypothesis("track it and refund the rest", -0.3), Hypothesis("track it", -0.1)]
    assert choose(lost, parse).index == 0
    sure = [Hypothesis("where is my order", -0.9), Hypothesis("track it", -0.1)]
    assert choose(sure, parse).index == 0
    assert choose(sure, parse, first_sure=0.95).index == 1


def test_no_readings_is_an_error() -> None:
    with pytest.raises(ValueError):
        choose([], lambda t: None)  # type: ignore[arg-type, return-value]


@pytest.fixture(scope="module")
def shared():
    settings = Settings()
    settings.models.stt.second_pass_below = 1.0  # every accepted open request gets a second pass
    settings.models.workers = 1
    models = SharedModels.load(settings)
    yield models
    models.close()


def _phone(text: str, voice: str) -> bytes:
    samples, _ = espeak_ng(text, voice=voice, sample_rate=pcm.SAMPLE_RATE)
    return phone_line(to_pcm16(samples))


def test_an_unsure_open_request_gets_the_beams_readings_after_its_own(shared) -> None:
    transcript = shared.recognise(_phone("I was charged twice for the same order", "en-gb-scotland"))
    assert transcript.rejected is None, transcript
    readings = transcript.alternatives
    assert readings and readings[0].text == transcript.text, transcript
    assert len({h.text for h in readings}) == len(readings)  # no reading twice
    assert all(h.text and h.avg_logprob <= 0.0 for h in readings)


def test_answers_to_a_question_and_rejected_audio_get_no_second_pass(shared) -> None:
    answer = shared.recognise(_phone("four five two eight one", "en-us"), expects="order_number")
    assert answer.rejected is None and answer.alternatives == (), answer
    tones = shared.recognise(b"\x00\x00" * pcm.SAMPLE_RATE)
    assert tones.text == "" and tones.alternatives == ()


def test_no_second_pass_by_default() -> None:
    assert Settings().models.stt.second_pass_below == 0.0


def test_the_dialog_stage_acts_on_the_best_supported_reading_and_traces_them_all(shared, tmp_path) -> None:
    """A caller turn with the recogniser's readings reaches the real dialog stage: the bot answers the reading
    the NLU understands, the caller's turn is recorded with it, and the bot turn's trace lists every reading. A turn
    read by the second recogniser names it in the trace."""
    import asyncio
    import time
    from datetime import UTC, datetime

    from pipecat.frames.frames import EndFrame
    from pipecat.pipeline.worker import PipelineWorker
    from stage_helpers import SaidRecorder, run_pipeline

    from dialogs.engine import DialogEngine
    from voicebot.config import CallConfig
    from voicebot.pipeline.call import CallContext
    from voicebot.pipeline.dialog import DialogStage
    from voicebot.pipeline.frames import CallerTurnFrame, GreetFrame
    from voicebot.storage import CallStore
    from voicebot.storage.schema import upgrade

    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = DialogEngine.build(database_url=url, seed_demo=True, seed=3)
    upgrade(url)
    store = CallStore(engine.database.engine)

    session = engine.new_call(channel="web", call_id="call-nbest")
    call = CallContext("call-nbest", "web", None, session, store, shared)
    ear = SaidRecorder()
    readings = (Hypothesis("banana piano", -0.2), Hypothesis("I was charged twice for the same order", -0.5))

    async def drive(task: PipelineWorker) -> None:
        await task.queue_frame(GreetFrame())
        await ear.until(1)
        now = datetime.now(UTC)
        await task.queue_frame(CallerTurnFrame(text=readings[0].text, start=now, end=now,
                                               speech_end=time.monotonic(), released=time.monotonic(),
                                               confidence=0.5, alternatives=readings))
        await ear.until(2)
        # A turn the first recogniser rejected and the second read (models.stt.second_opinion).
        await task.queue_frame(CallerTurnFrame(text="I want to speak to an agent", start=now, end=now,
                                               speech_end=time.monotonic(), released=time.monotonic(),
                                               confidence=0.6, heard_by="tiny.en", heard_by_because="language th"))
        await ear.until(3)
        await call.finish("caller_hangup")
        await task.queue_frame(EndFrame())

    asyncio.run(run_pipeline([DialogStage(call, CallConfig()), ear], drive))
    assert store.flush(timeout=60)
    record = store.get("call-nbest")
    assert record is not None
    caller = [t for t in record["turns"] if t["speaker"] == "caller"]
    assert caller[0]["text"] == readings[1].text, caller
    bot = [t for t in record["turns"] if t["speaker"] == "bot"]
    trace = bot[1]["extra"]["trace"]["hypotheses"]
    assert [h["text"] for h in trace] == [r.text for r in readings]
    assert [h["chosen"] for h in trace] == [False, True] and trace[1]["intents"] == ["billing_question"]
    assert "heard_by" not in bot[1]["extra"]["trace"]
    assert bot[2]["extra"]["trace"]["heard_by"] == {"model": "tiny.en", "first_rejected": "language th"}
    store.close()
    engine.database.dispose()
