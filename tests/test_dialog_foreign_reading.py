"""Speech the recogniser rejected only because it sounded like another language (accented English guessed Thai):
at an open question the dialog asks whether the reading's one sure request was meant, never acts on it; a reading
that is no sure request, or any answer to a question, stays "didn't catch that" and counts as a miss. Real NLU
trained from the bundled domain, real SQLite file; the end-to-end test drives the real dialog stage with the caller
turns the recogniser would give it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from dialog_helpers import NOW

from dialogs.engine import DialogEngine, EngineOptions, Turn, TurnSignals
from dialogs.manager.doubt import ForeignReading, proposed_request

STRANGER = "+15550009999"  # no customer: the greeting asks how to help, an open question
REJECTED = TurnSignals(transcript_confidence=0.0)  # how the pipeline passes a rejected turn


def _foreign(text: str) -> Turn:
    return Turn(text="", signals=REJECTED, foreign=ForeignReading("th", text))


def test_only_a_language_rejection_passes_its_reading_on() -> None:
    from voicebot.pipeline.shared import Transcript

    assert Transcript("", 0.0, rejected="language th", decoded="My address is wrong.").foreign_reading == \
        "My address is wrong."
    for why in ("unsure", "no speech", "repetitive", "prompt echo"):
        assert Transcript("", 0.0, rejected=why, decoded="My address is wrong.").foreign_reading == ""
    assert Transcript("My address is wrong.", 0.9, decoded="My address is wrong.").foreign_reading == ""


def test_the_proposal_is_one_sure_request_without_its_slot_values(trained: tuple) -> None:
    _, nlu = trained
    hit = proposed_request(nlu.parse("my address is wrong on my account"), 0.6)
    assert hit is not None and hit.name == "change_address" and hit.slots == {}
    assert proposed_request(nlu.parse("where is my order 45281"), 0.6).slots == {}  # type: ignore[union-attr]
    assert proposed_request(nlu.parse("my address is wrong on my account"), 0.0) is None  # 0: off
    assert proposed_request(nlu.parse("Wives, SMS, Trichon, Yom Mykorn"), 0.6) is None
    assert proposed_request(nlu.parse("yes please"), 0.6) is None  # an answer is no request
    assert proposed_request(nlu.parse("let me talk to a person"), 0.6) is None
    both = nlu.parse("stop, charge, in need for the premium plan.")  # cancel_subscription 0.88, billing 0.60
    assert [h.name for h in both.intents] == ["cancel_subscription", "billing_question"]
    assert proposed_request(both, 0.6) is None  # two requests: a garbled reading


def test_a_sure_reading_is_asked_about_yes_goes_on_and_the_record_keeps_no_reading(engine: DialogEngine) -> None:
    session = engine.new_call(channel="sip", caller_id=STRANGER)
    assert session.start().expects is None
    asked = session.handle(_foreign("My address is wrong on my account."))
    assert asked.text.startswith("Sorry, I may not have caught that. Just to check") and asked.expects == "yes_no"
    assert "address" in asked.text and asked.action == "continue"
    assert asked.trace["foreign_reading"]["asked"] == "change_address"
    assert asked.trace["foreign_reading"]["language"] == "th"
    assert asked.trace["foreign_reading"]["text"] == "My address is wrong on my account."
    assert "language th guessed" in asked.trace["confirm_reason"]
    assert "address" not in str(asked.intents) and asked.heard is None  # the caller's turn: as when rejected today
    assert session.transcript[-2]["speaker"] == "caller" and session.transcript[-2]["text"] == ""
    assert session.state.no_match_streak == 1
    went_on = session.handle(Turn(text="yes"))
    assert "caller confirmed the request" in went_on.trace["steps"] and session.state.no_match_streak == 0
    assert session.state.current is not None and session.state.current.intent == "change_address"


def test_no_asks_again_and_the_turn_asked_about_was_a_miss(engine: DialogEngine) -> None:
    session = engine.new_call(channel="sip", caller_id=STRANGER)
    session.start()
    assert session.handle(_foreign("payment on my statement, I don't think I'm")).text.startswith("Sorry, I may not")
    again = session.handle(Turn(text="no"))
    assert "what would you like to do" in again.text and again.action == "continue"
    assert session.state.no_match_streak == 1 and session.state.current is None
    # A second miss offers a person, as for any caller the bot did not understand twice.
    assert session.handle(_foreign("My address is wrong on my account.")).action == "handoff"


def test_a_reading_that_is_no_sure_request_is_a_miss_and_two_offer_a_person(engine: DialogEngine) -> None:
    session = engine.new_call(channel="sip", caller_id=STRANGER)
    session.start()
    first = session.handle(_foreign("Wives, SMS, Trichon, Yom Mykorn"))
    assert first.text.startswith("Sorry, I didn't") and first.trace["foreign_reading"]["asked"] is None
    second = session.handle(_foreign("Aitonake, Oten, Dima, Dlo, Anzha, Tantanaraim."))
    assert second.action == "handoff" and second.handoff is not None and second.handoff.reason == "not_understood"


def test_an_answer_to_a_question_is_never_asked_about(engine: DialogEngine) -> None:
    session = engine.new_call(channel="sip", caller_id=STRANGER)
    session.start()
    session.handle(Turn(text="where is my order"))  # asks for the phone number or an order number
    asked = session.handle(_foreign("My address is wrong on my account."))
    assert not asked.text.startswith("Sorry, I may not") and "foreign_reading" not in asked.trace
    checking = session.handle(Turn(text="cancel my subscription", signals=TurnSignals(transcript_confidence=0.3)))
    assert checking.expects == "yes_no"  # "Just to check: ...?"
    answer = session.handle(_foreign("My address is wrong on my account."))
    assert not answer.text.startswith("Sorry, I may not") and "foreign_reading" not in answer.trace


def test_a_reading_with_a_secret_is_masked_in_the_trace(engine: DialogEngine) -> None:
    session = engine.new_call(channel="sip", caller_id=STRANGER)
    session.start()
    reply = session.handle(_foreign("my pin is 4321"))
    assert "4321" not in str(reply.trace) and "4321" not in str(session.transcript)


def test_off_keeps_the_strict_rule(trained: tuple, tmp_path: Path) -> None:
    from dialogs.db.engine import ensure_database

    domain, nlu = trained
    db = ensure_database(f"sqlite:///{tmp_path / 'bot.db'}", seed_demo=True, now=NOW)
    engine = DialogEngine(domain, nlu, db, EngineOptions(confirm_foreign_guess_from=0.0), clock=lambda: NOW, seed=3)
    session = engine.new_call(channel="sip", caller_id=STRANGER)
    session.start()
    assert session.handle(_foreign("My address is wrong on my account.")).text.startswith("Sorry, I didn't")


def test_through_the_dialog_stage_a_thai_guess_is_asked_about_and_the_stored_turn_keeps_no_words(
    tmp_path: Path,
) -> None:
    """Caller turns as the recogniser gives them (no text, rejected "language th", the reading beside) reach the
    real dialog stage: a sure reading is asked about, "yes" goes on, "no" asks again and one more miss offers a
    person; a gibberish reading is "didn't catch that" and two offer a person. The stored caller turns say only that
    they were not understood."""
    from pipecat.frames.frames import EndFrame
    from pipecat.pipeline.worker import PipelineWorker
    from stage_helpers import SaidRecorder, ThreadPool, run_pipeline

    from voicebot.config import CallConfig
    from voicebot.pipeline.call import CallContext
    from voicebot.pipeline.dialog import DialogStage
    from voicebot.pipeline.frames import BotSayFrame, CallerTurnFrame, GreetFrame
    from voicebot.storage import CallStore
    from voicebot.storage.schema import upgrade

    url = f"sqlite:///{tmp_path / 'bot.db'}"
    engine = DialogEngine.build(database_url=url, seed_demo=True, clock=lambda: NOW, seed=3)
    upgrade(url)
    store = CallStore(engine.database.engine)

    def turn(text: str = "", reading: str = "") -> CallerTurnFrame:
        now = datetime.now(UTC)
        return CallerTurnFrame(text=text, start=now, end=now, speech_end=time.monotonic(), released=time.monotonic(),
                               confidence=0.0 if reading else 0.9, rejected="language th" if reading else None,
                               foreign_reading=reading)

    async def call(call_id: str, turns: list[CallerTurnFrame]) -> list[BotSayFrame]:
        """One call: the greeting, then each turn and the bot's answer to it."""
        session = engine.new_call(channel="sip", caller_id=STRANGER, call_id=call_id)
        ctx = CallContext(call_id, "sip", STRANGER, session, store, ThreadPool())  # type: ignore[arg-type]
        ear = SaidRecorder(timeout_s=60)

        async def drive(task: PipelineWorker) -> None:
            await task.queue_frame(GreetFrame())
            await ear.until(1)
            for n, frame in enumerate(turns, start=2):
                await task.queue_frame(frame)
                await ear.until(n)
            await ctx.finish("caller_hangup")
            await task.queue_frame(EndFrame())

        await run_pipeline([DialogStage(ctx, CallConfig()), ear], drive)
        return ear.said[1:]

    sure, gibberish = "My address is wrong on my account.", "Wives, SMS, Trichon, Yom Mykorn"
    yes = asyncio.run(call("call-yes", [turn(reading=sure), turn("Yes.")]))
    no = asyncio.run(call("call-no", [turn(reading=sure), turn("No."), turn(reading=gibberish)]))
    lost = asyncio.run(call("call-lost", [turn(reading=gibberish), turn(reading=gibberish)]))
    assert yes[0].text.startswith("Sorry, I may not have caught that. Just to check") and "address" in yes[0].text
    assert not yes[1].text.startswith("Sorry") and yes[1].then == "continue"  # the address change goes on
    assert no[0].text == yes[0].text and "what would you like to do" in no[1].text and no[2].then == "handoff"
    assert lost[0].text.startswith("Sorry, I didn't") and lost[1].then == "handoff"
    assert store.flush(timeout=60)
    for call_id in ("call-yes", "call-no", "call-lost"):
        record = store.get(call_id)
        assert record is not None
        caller = [t for t in record["turns"] if t["speaker"] == "caller"]
        rejected = [t for t in caller if t["text"].startswith("[not understood")]
        assert rejected and all(t["text"] == "[not understood: language th]" for t in rejected)
        assert "address" not in str(rejected).lower() and "Trichon" not in str(caller)
    bot = [t for t in store.get("call-yes")["turns"] if t["speaker"] == "bot"]  # type: ignore[index]
    assert bot[1]["extra"]["trace"]["foreign_reading"]["asked"] == "change_address"
    store.close()
    engine.database.dispose()
