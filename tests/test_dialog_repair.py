"""Dialog behaviour around the pending question: what kind of answer the bot waits for (BotReply.expects),
the complaint a caller's words carry, confirm on doubt, and memory recall at a fixed clock. Real NLU trained from
the bundled domain, real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogs.engine import DialogEngine, Turn, TurnSignals
from dialogs.nlu.segmenter import split_complaint

JANE = "+15551230001"
JOHN = "+15551230002"


@pytest.mark.parametrize(("text", "complaint", "rest"), [
    ("This is ridiculous, this is the third time I'm calling. Where is my order 45281",
     "This is ridiculous; this is the third time I'm calling", "Where is my order 45281"),
    ("i am so fed up with this where is my parcel", "i am so fed up with this", "where is my parcel"),
    ("this is ridiculous", "this is ridiculous", ""),
    ("where is my order", None, "where is my order"),
    ("my parcel has not arrived", None, "my parcel has not arrived"),
])
def test_split_complaint(text: str, complaint: str | None, rest: str) -> None:
    assert split_complaint(text) == (complaint, rest)


def test_expects_names_the_kind_of_answer_each_question_asks_for(engine: DialogEngine) -> None:
    session = engine.new_call(channel="chat", caller_id=JANE)
    greeting = session.start()
    assert greeting.expects == "yes_no"  # "Is that what you're calling about?"
    assert session.handle(Turn(text="where is my order")).expects == "postcode"  # verification: postcode first
    asked = session.handle(Turn(dtmf="4321#"))
    assert "order number" in asked.text and asked.expects == "order_number"
    assert session.handle(Turn(text="")).expects == "order_number"  # silence keeps the question
    told = session.handle(Turn(text="45281"))
    assert "4 5 2 8 1" in told.text and told.expects is None  # "anything else?" is an open question
    assert session.handle(Turn(text="I moved, change my address")).expects == "address"
    assert session.handle(Turn(text="21 Oak Street, Chicago, 60614")).expects == "yes_no"


def test_browser_caller_is_asked_for_the_phone_number(engine: DialogEngine) -> None:
    session = engine.new_call(channel="webrtc")
    session.start()
    reply = session.handle(Turn(text="where is my order 45281"))
    assert "couldn't match" not in reply.text and reply.expects == "phone"


def test_confirm_on_doubt_traces_the_transcript_confidence_and_why(engine: DialogEngine) -> None:
    session = engine.new_call(channel="sip", caller_id=JANE)
    session.start()
    reply = session.handle(Turn(text="cancel my subscription", signals=TurnSignals(transcript_confidence=0.31)))
    assert reply.text.startswith("Just to check") and reply.action == "continue"
    assert reply.trace["transcript_confidence"] == 0.31
    assert "transcript confidence 0.31 < 0.5" in reply.trace["confirm_reason"]
    again = session.handle(Turn(text="no"))
    assert again.action == "continue" and "what would you like to do" in again.text


def test_a_request_whose_words_were_all_heard_unsurely_is_confirmed_and_traced(trained: tuple, tmp_path: Path) -> None:
    from dialog_helpers import NOW

    from dialogs.db.engine import ensure_database
    from dialogs.engine import EngineOptions
    from dialogs.nlu.heard import HeardWord

    domain, nlu = trained
    db = ensure_database(f"sqlite:///{tmp_path / 'bot.db'}", seed_demo=True, now=NOW)
    engine = DialogEngine(domain, nlu, db, EngineOptions(confirm_heard_below=0.5), clock=lambda: NOW, seed=3)
    words = (HeardWord("Cancel", 0.31), HeardWord(" my", 0.42), HeardWord(" subscription.", 0.35))
    session = engine.new_call(channel="sip", caller_id=JANE)
    session.start()
    # The transcript as a whole is sure enough (0.8): the words of the request are not.
    reply = session.handle(Turn(text="Cancel my subscription.",
                                signals=TurnSignals(transcript_confidence=0.8, heard_words=words)))
    assert reply.text.startswith("Just to check") and reply.action == "continue"
    assert "words of the request heard at 0.42 < 0.5" in reply.trace["confirm_reason"]
    assert reply.trace["nlu"]["heard"] == {"cancel_subscription": 0.42}
    assert reply.trace["nlu"]["heard_words"] == [["Cancel", 0.31], [" my", 0.42], [" subscription.", 0.35]]
    sure = tuple(HeardWord(w.text, 0.9) for w in words)
    session = engine.new_call(channel="sip", caller_id=JANE)
    session.start()
    acted = session.handle(Turn(text="Cancel my subscription.",
                                signals=TurnSignals(transcript_confidence=0.8, heard_words=sure)))
    assert not acted.text.startswith("Just to check") and "confirm who you are" in acted.text


def test_recalled_return_is_told_with_its_own_state(engine: DialogEngine) -> None:
    session = engine.new_call(channel="sip", caller_id=JOHN)
    assert "contacted us recently" in session.start().text
    session.handle(Turn(text="yes"))
    told = session.handle(Turn(text="10001"))
    assert "return for order 6 3 9 5 0 was started" in told.text and "label" in told.text
    refund = session.handle(Turn(text="when will I get my refund?"))
    assert "refund for order 6 3 9 5 0" in refund.text and "charge" not in refund.text
    assert session.end("bot_hangup") == "resolved"
