"""A request asked as a question about how things work gets the knowledge answer, then the request offered
(dialogs/manager/faq.py, real NLU, knowledge base and SQLite file)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from dialogs.db.engine import ensure_database
from dialogs.domain import load_domain
from dialogs.engine import DialogEngine, EngineOptions, Turn
from dialogs.knowledge.dialog import Knowledge
from dialogs.manager.faq import asks_how
from dialogs.manager.state import Expect
from dialogs.nlu import NLU

NOW = datetime(2026, 11, 20, 10, 30)
SECURITY = ("postcode", "date of birth", "PIN")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> DialogEngine:
    domain = load_domain()
    knowledge = Knowledge.for_domain(domain)
    assert knowledge is not None
    nlu = NLU.train(domain, questions=knowledge)
    path: Path = tmp_path_factory.mktemp("offer") / "bot.db"
    db = ensure_database(f"sqlite:///{path}", seed_demo=True, now=NOW)
    return DialogEngine(domain, nlu, db, EngineOptions(), clock=lambda: NOW, seed=7, knowledge=knowledge)


@pytest.mark.parametrize(("clause", "asks"), [
    ("can i exchange the jacket for a medium", True),
    ("how long before i see my money after a return", True),
    ("what happens if i end my subscription mid month", True),
    ("is it possible to get another colour instead of a refund", True),
    ("where is my order", False),
    ("when will my order arrive", False),
    ("can you reset my password", False),
    ("i want to return the dress", False),
])
def test_how_questions_are_told_from_instructions(clause: str, asks: bool) -> None:
    assert asks_how(clause) is asks


def test_the_answer_then_the_request_offered_and_a_yes_starts_its_flow(engine: DialogEngine) -> None:
    session = engine.new_call(channel="chat", caller_id="+15551230001")
    session.start()
    reply = session.handle(Turn(text="can I exchange the jacket for a medium"))
    assert [i["name"] for i in reply.intents] == ["return_item"]
    assert "direct exchanges" in reply.text and reply.text.endswith("Would you like me to start a return now?")
    assert not any(w in reply.text for w in SECURITY)  # nothing personal asked, nothing started yet
    assert session.knowledge_answered == ["exchanges"] and session._all_tasks() == []
    assert reply.trace["knowledge"][0]["entry"] == "exchanges"
    assert session.state.expect is Expect.ALSO_WANTED
    reply = session.handle(Turn(text="yes"))
    assert [t.intent for t in session._all_tasks()] == ["return_item"]
    assert any(w in reply.text for w in SECURITY)


def test_a_no_to_the_offer_moves_on(engine: DialogEngine) -> None:
    session = engine.new_call(channel="chat", caller_id="+15551230001")
    session.start()
    session.handle(Turn(text="can I exchange the jacket for a medium"))
    reply = session.handle(Turn(text="no thanks"))
    assert "anything else" in reply.text and session._all_tasks() == []
    assert session.state.expect is Expect.ANYTHING_ELSE


@pytest.mark.parametrize("text", ["how can I track order 12345 online", "I want to return the dress",
                                  "where is my order"])
def test_a_request_with_a_value_or_said_as_an_instruction_starts_at_once(engine: DialogEngine, text: str) -> None:
    session = engine.new_call(channel="chat", caller_id="+15551230001")
    session.start()
    reply = session.handle(Turn(text=text))
    assert session.knowledge_answered == [] and len(session._all_tasks()) == 1
    assert any(w in reply.text for w in SECURITY)
