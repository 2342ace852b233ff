"""The queue request of a hand-off (``voicebot.transfer.request``): computed from the dialog engine's real
packet (real NLU trained from the bundled domain, real SQLite file), and from packets that are not."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from dialogs.db.engine import ensure_database
from dialogs.domain import load_domain
from dialogs.engine import DialogEngine, EngineOptions, Turn
from dialogs.nlu import NLU
from telephony.queue.request import NO_WHISPER, QueueRequest
from voicebot.transfer.request import queue_request_from_packet

NOW = datetime(2026, 11, 20, 10, 30)
JANE = "+15551230001"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> DialogEngine:
    domain = load_domain()
    db_file: Path = tmp_path_factory.mktemp("db") / "bot.db"
    db = ensure_database(f"sqlite:///{db_file}", seed_demo=True, now=NOW)
    return DialogEngine(domain, NLU.train(domain), db, EngineOptions(), clock=lambda: NOW, seed=7)


def test_a_known_callers_request_for_a_person(engine: DialogEngine) -> None:
    session = engine.new_call(channel="sip", caller_id=JANE)
    session.start()
    if session.state.expect.value == "recall":
        session.handle(Turn(text="no"))
    session.handle(Turn(text="where is my order"))
    reply = session.handle(Turn(text="this is useless, let me talk to a real person"))
    assert reply.action == "handoff"
    packet = reply.handoff

    request = queue_request_from_packet(packet)

    assert isinstance(request, QueueRequest)
    assert (request.queue, request.priority, request.caller) == (packet["queue"], packet["priority"], JANE)
    assert request.customer_name == "Jane Doe"
    assert request.intents == ("order_status",)
    assert request.reason == "caller_request"
    assert request.frustration == packet["frustration"]["level"]
    assert request.summary == packet["summary"]
    assert request.details == packet  # passed through for the agent page and voice messages
    assert request.whisper.startswith("Jane Doe, ") and "Order status." in request.whisper
    assert "Asked for a person." not in request.whisper  # the request is said instead of the reason


def test_a_human_only_request_goes_to_its_queue(engine: DialogEngine) -> None:
    session = engine.new_call(channel="sip")
    session.start()
    reply = session.handle(Turn(text="the app keeps crashing when I log in"))
    request = queue_request_from_packet(reply.handoff)
    assert (request.queue, request.reason, request.customer_name) == ("tech", "human_only", None)
    assert request.whisper.startswith("Caller not identified.")


def test_malformed_fields_are_left_out() -> None:
    request = queue_request_from_packet({
        "queue": 5, "priority": True, "caller_id": ["x"], "customer": "Jane",
        "intents_pending": ["refund", {"intent": None}, {"intent": "cancel_subscription"}],
        "frustration": "high", "reason": None,
    })
    assert (request.queue, request.priority, request.caller, request.customer_name) == (None, 0, None, None)
    assert (request.intents, request.frustration, request.reason) == (("cancel_subscription",), None, None)
    assert request.whisper == "Caller not identified. Cancel subscription."


def test_a_packet_without_the_dialog_fields_is_whispered_by_its_summary() -> None:
    assert queue_request_from_packet({"summary": "Wants a refund.", "queue": "billing"}).whisper == "Wants a refund."
    assert queue_request_from_packet(None) == QueueRequest()
    assert queue_request_from_packet({}).whisper == NO_WHISPER
