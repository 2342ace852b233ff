"""The queue request of a hand-off (``voicebot.transfer.request``): computed from the dialog engine's real
packet (real NLU trained from the bundled domain, real SQLite file), and from packets that are not; and the
live queue queueing by it (real ACD, a browser caller's leg)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
from handoff_helpers import customer, frustration, handoff_packet, intent

from audio.pcm import silence
from dialogs.db.engine import ensure_database
from dialogs.domain import load_domain
from dialogs.engine import DialogEngine, EngineOptions, Turn
from dialogs.nlu import NLU
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.live import LiveQueue
from telephony.queue.request import NO_WHISPER, QueueRequest
from telephony.queue.runner import QueueRunner
from voicebot.server.caller_leg import BrowserLeg
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
    assert reply.action == "handoff" and reply.handoff is not None
    packet = reply.handoff.to_dict()  # the JSON the agent page gets

    request = queue_request_from_packet(reply.handoff)

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
    assert reply.handoff is not None
    request = queue_request_from_packet(reply.handoff)
    assert (request.queue, request.reason, request.customer_name) == ("tech", "human_only", None)
    assert request.whisper.startswith("Caller not identified.")


def test_typed_fields_of_a_packet_make_the_request() -> None:
    packet = handoff_packet(
        "Caller Jane Doe, not verified. Wants to cancel.", reason="verification_failed", queue="billing",
        priority=2, caller_id=JANE, customer=customer(" Jane Doe ", False),
        intents_pending=(intent("cancel_subscription"), intent(" ")), intents_done=(intent("refund", "done"),),
        frustration=frustration("annoyed", 0.5),
    )
    request = queue_request_from_packet(packet)
    assert (request.queue, request.priority, request.caller, request.customer_name, request.verified) == (
        "billing", 2, JANE, "Jane Doe", False)
    assert (request.intents, request.frustration, request.reason) == (
        ("cancel_subscription", "refund"), "annoyed", "verification_failed")
    assert request.whisper == "Jane Doe, not verified. Cancel subscription, refund. Annoyed."
    assert request.details == packet.to_dict()


def test_without_a_packet_the_caller_is_announced_plainly() -> None:
    assert queue_request_from_packet(None) == QueueRequest()
    assert queue_request_from_packet(None).whisper == NO_WHISPER


def test_the_live_queue_queues_by_the_requests_fields_not_the_packets() -> None:
    """The queue, priority and caller the ACD sees come from the request; the packet only rides along."""
    async def speak(text: str) -> bytes:
        return silence(100)

    async def scenario() -> tuple[dict, str]:
        live = LiveQueue(None, speak)
        queues = [QueueConfig(name="general", join_empty=True), QueueConfig(name="billing", join_empty=True)]
        runner = QueueRunner.on_loop([AgentConfig(id="alice")], queues, live)
        live.attach(runner)
        queued = asyncio.Event()
        live.on_queued = lambda _call_id: queued.set()
        leg = BrowserLeg("call-1", "+15551230001")
        request = QueueRequest(queue="billing", priority=3, details={"queue": "general", "priority": 0})
        transfer = asyncio.ensure_future(live.transfer_call(leg, request))
        await asyncio.wait_for(queued.wait(), 5)
        billing = next(q for q in runner.acd.snapshot()["queues"] if q["name"] == "billing")
        leg.peer_gone()  # the caller gives up
        result = await asyncio.wait_for(transfer, 5)
        await live.close()
        return billing["waiting"][0], result.outcome

    waiting, outcome = asyncio.run(scenario())
    assert (waiting["call_id"], waiting["caller"], waiting["priority"]) == ("call-1", "+15551230001", 3)
    assert outcome == "abandoned"
