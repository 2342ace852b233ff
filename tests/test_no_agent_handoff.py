"""Hand-offs with nobody to take them: ``voicebot config check`` warns, the app's desk stores the callback request
with the packet where the agent queue keeps its own, and with agents configured the hand-off is as before.
The conversations themselves (offer, number, goodbye, stored outcome) are in tests/conversations/slots.yaml;
a real SIP call through it is in tests/test_sip_keypad_dialog.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml
from click.testing import CliRunner

from dialogs.db.engine import ensure_database
from dialogs.engine import DialogEngine, EngineOptions, Turn
from telephony.queue.store import CallbackStore
from voicebot.cli.config_cmd import config
from voicebot.config import Settings
from voicebot.transfer.desk import QueueDesk, no_agents_warning

NOW = datetime(2026, 11, 20, 10, 30)
REPO = Path(__file__).resolve().parents[1]
PEOPLE = {"agents": [{"id": "alice", "contact": "sip:alice@127.0.0.1:5099"}],
          "queues": [{"name": name} for name in ("general", "retention", "tech")]}


def test_config_check_warns_that_hand_offs_reach_nobody_without_agents_and_queues(tmp_path: Path) -> None:
    result = CliRunner().invoke(config, ["check", str(REPO / "voicebot.yaml")])
    assert result.exit_code == 0 and "OK" in result.stdout  # a warning leaves the config usable
    assert "warning: agents/queues: no agents and no queues configured" in result.stderr
    assert "offers a callback" in result.stderr
    with_people = tmp_path / "people.yaml"
    with_people.write_text(yaml.safe_dump(PEOPLE))
    result = CliRunner().invoke(config, ["check", str(with_people)])
    assert result.exit_code == 0, result.output
    assert "agents/queues" not in result.stderr


def test_the_warning_names_what_is_missing() -> None:
    assert "no queues configured" in (no_agents_warning(Settings(agents=PEOPLE["agents"])) or "")
    assert no_agents_warning(Settings(**PEOPLE)) is None


def _engine(trained: tuple, tmp_path: Path, has_agents: bool) -> tuple[DialogEngine, CallbackStore]:
    domain, nlu = trained
    db = ensure_database(f"sqlite:///{tmp_path / 'bot.db'}", seed_demo=True, now=NOW)
    engine = DialogEngine(domain, nlu, db, EngineOptions(), clock=lambda: NOW, seed=7)
    desk = QueueDesk(db.engine, has_agents=has_agents, clock=lambda: NOW.replace(tzinfo=UTC))
    desk.callbacks.create_tables()
    engine.desk = desk
    return engine, desk.callbacks


def test_a_callback_request_keeps_the_packet_where_the_queue_keeps_its_own(trained: tuple, tmp_path: Path) -> None:
    engine, callbacks = _engine(trained, tmp_path, has_agents=False)
    session = engine.new_call(channel="sip", caller_id="+15551230001", call_id="call-1")
    session.start()
    offer = session.handle(Turn(text="where is my order 45281, actually let me talk to a person"))
    assert offer.action == "continue" and offer.handoff is None and "none of my colleagues" in offer.text
    assert session.handle(Turn(dtmf="1")).text.endswith("5 5 5 1 2 3 0 0 0 1?")  # 1 is yes on the keypad
    done = session.handle(Turn(text="yes that's right"))
    assert done.action == "hangup" and "call you back" in done.text
    assert session.end("bot_hangup") == "callback_requested"
    [request] = callbacks.requests()  # what GET /api/callbacks lists
    assert (request.call_id, request.caller, request.queue, request.reason) == (
        "call-1", "+15551230001", "general", "no_agent")
    assert request.handoff["reason"] == "caller_request"
    assert [i["intent"] for i in request.handoff["intents_pending"]] == ["order_status"]


def test_a_caller_who_hangs_up_at_the_offer_is_no_agent_not_handed_off(trained: tuple, tmp_path: Path) -> None:
    engine, callbacks = _engine(trained, tmp_path, has_agents=False)
    session = engine.new_call(channel="sip", caller_id="+15551230001")
    session.start()
    session.handle(Turn(text="I want to speak to a human"))
    assert session.end("caller_hangup") == "no_agent"
    assert callbacks.requests() == []


def test_with_agents_the_hand_off_is_as_before(trained: tuple, tmp_path: Path) -> None:
    engine, callbacks = _engine(trained, tmp_path, has_agents=True)
    session = engine.new_call(channel="sip", caller_id="+15551230001")
    session.start()
    reply = session.handle(Turn(text="I want to speak to a human"))
    assert reply.action == "handoff" and reply.handoff is not None and "Connecting you" in reply.text
    assert session.end("handoff") == "handoff"
    assert callbacks.requests() == []
