"""The dialog manager end to end from text: real NLU trained from the bundled domain, real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dialog_helpers import demo_engine
from sqlalchemy import func, select

from dialogs.db.models import AuditLog, Contact, Customer, Subscription
from dialogs.engine import DialogEngine, Turn, TurnSignals

JANE = "+15551230001"
JOHN = "+15551230002"


@pytest.fixture()
def engine(trained: tuple, tmp_path: Path) -> DialogEngine:
    return demo_engine(trained, tmp_path, seed=7)


def talk(session, *lines):
    replies = []
    for line in lines:
        turn = line if isinstance(line, Turn) else Turn(text=line)
        replies.append(session.handle(turn))
    return replies


def start_known(engine: DialogEngine, caller: str):
    """Start a call from a known number; decline a recalled matter if the bot brings one up."""
    session = engine.new_call(channel="chat", caller_id=caller)
    greeting = session.start()
    if session.state.expect.value == "recall":
        session.handle(Turn(text="no"))
    return session, greeting


def audit_rows(engine: DialogEngine) -> int:
    with engine.database.session() as s:
        return s.scalar(select(func.count()).select_from(AuditLog))


def test_greeting_says_it_is_an_automated_assistant(engine):
    reply = engine.new_call(channel="chat").start()
    assert "automated assistant" in reply.text.lower()
    assert reply.action == "continue"


def test_order_status_with_verification_by_postcode(engine):
    session, _ = start_known(engine, JANE)
    r1 = session.handle(Turn(text="hi where is my order"))
    assert [i["name"] for i in r1.intents if i["name"] != "greet"] == ["order_status"]
    assert "postcode" in r1.text.lower()
    r2 = session.handle(Turn(text="nine four one zero seven"))
    assert session.state.verified and session.state.verified_by == "postcode"
    assert "order number" in r2.text.lower()
    r3 = session.handle(Turn(text="uh it's four five two eight one"))
    assert "4 5 2 8 1" in r3.text and "shipped" in r3.text.lower()
    assert "order_status" in r3.trace["steps"][-2] or any("lookup_order -> ok" in s for s in r3.trace["steps"])


def test_pin_on_the_keypad_verifies(engine):
    session, _ = start_known(engine, JANE)
    session.handle(Turn(text="I want to check my order 45281"))
    reply = session.handle(Turn(dtmf="4321#"))
    assert session.state.verified_by == "pin"
    assert "shipped" in reply.text.lower()


def test_two_intents_are_announced_and_handled_in_order(engine):
    session, _ = start_known(engine, JANE)
    r = session.handle(Turn(text="I moved so update my address and tell me where my order is"))
    assert [i["name"] for i in r.intents] == ["change_address", "order_status"]
    assert "both" in r.text.lower()
    r = session.handle(Turn(dtmf="4321"))
    assert "address" in r.text.lower()
    r = session.handle(Turn(text="12 Oak Street, Springfield, 62704"))
    assert "correct" in r.text.lower() or "right" in r.text.lower()
    r = session.handle(Turn(text="yes"))
    assert "now" in r.text.lower() and "order number" in r.text.lower()
    r = session.handle(Turn(text="45281"))
    assert "shipped" in r.text.lower()
    with engine.database.session() as s:
        jane = s.scalars(select(Customer).where(Customer.phone == JANE)).one()
        assert "Oak" in jane.address_line
    assert session.end() == "resolved"


def test_negated_request_is_not_acted_on(engine):
    session, _ = start_known(engine, JANE)
    r = session.handle(Turn(text="I don't want to cancel, just tell me where my order is"))
    assert [i["name"] for i in r.intents] == ["order_status"]


def test_unknown_order_number_is_politely_reasked_and_nothing_changes(engine):
    session, _ = start_known(engine, JANE)
    session.handle(Turn(text="where is my order"))
    session.handle(Turn(dtmf="4321"))
    before = audit_rows(engine)
    r = session.handle(Turn(text="99999"))
    assert "couldn't find" in r.text.lower()
    assert session.state.expect.value == "slot" and session.state.expect_slot == "order_id"
    assert audit_rows(engine) == before


def test_someone_elses_order_is_not_disclosed(engine):
    session, _ = start_known(engine, JOHN)
    session.handle(Turn(text="where is my order 45281"))
    r = session.handle(Turn(text="one zero zero zero one"))
    assert "UPS" not in r.text and "shipped" not in r.text.lower()


def test_failed_verification_hands_off_after_the_limit(engine):
    session, _ = start_known(engine, JANE)
    session.handle(Turn(text="cancel my subscription"))
    r = None
    for _ in range(3):
        r = session.handle(Turn(dtmf="0000"))
    assert r is not None and r.action == "handoff"
    assert r.handoff.reason == "verification_failed"
    assert r.handoff.customer.verified is False
    with engine.database.session() as s:
        sub = s.scalars(select(Subscription).where(Subscription.status == "active")).first()
        assert sub is not None  # nothing was cancelled


def test_cancel_subscription_changes_database_and_audits(engine):
    session, _ = start_known(engine, JANE)
    before = audit_rows(engine)
    session.handle(Turn(text="I want to cancel my subscription"))
    r = session.handle(Turn(dtmf="4321"))
    assert "sure" in r.text.lower() or "cancel" in r.text.lower()
    r = session.handle(Turn(text="yes please"))
    assert "cancelled" in r.text.lower()
    assert audit_rows(engine) > before


def test_declined_confirmation_changes_nothing(engine):
    session, _ = start_known(engine, JANE)
    before = audit_rows(engine)
    session.handle(Turn(text="please cancel my subscription"))
    session.handle(Turn(dtmf="4321"))
    r = session.handle(Turn(text="no"))
    assert "haven't changed" in r.text.lower()
    assert audit_rows(engine) == before


def test_caller_without_caller_id_is_found_by_phone_number(engine):
    session = engine.new_call(channel="chat", caller_id=None)
    session.start()
    r = session.handle(Turn(text="reset my password"))
    assert "phone number" in r.text.lower()
    r = session.handle(Turn(text="five five five one two three zero zero zero one"))
    assert "postcode" in r.text.lower()
    r = session.handle(Turn(text="April 12 1985"))
    assert session.state.verified_by == "date_of_birth"
    r = session.handle(Turn(text="yes"))
    assert "@example.com" in r.text


def test_request_for_agent_gives_a_full_handoff_packet(engine):
    session, _ = start_known(engine, JANE)
    session.handle(Turn(text="where is my order"))
    r = session.handle(Turn(text="this is useless, let me talk to a real person"))
    assert r.action == "handoff"
    packet = r.handoff
    assert packet is not None and packet.reason == "caller_request"
    assert "Jane Doe" in packet.summary
    assert [t.intent for t in packet.intents_pending] == ["order_status"]
    assert any(e.speaker == "caller" for e in packet.transcript)
    assert session.end("handoff") == "handoff"


def test_handoff_packet_json_is_the_contract(engine):
    """The packet's JSON (call record, agent page, websocket, dashboard) keeps its keys, order and values."""
    session, _ = start_known(engine, JANE)
    talk(session, "where is my order", "nine four one zero seven", "it's four five two eight one",
         "and I want to return order 45281")
    r = session.handle(Turn(text="this is useless, let me talk to a real person",
                            signals=TurnSignals(frustration=0.55, explanation="louder than usual")))
    assert r.action == "handoff" and r.handoff is not None
    intent = {"order_id": "45281"}
    expected = {
        "summary": "Caller Jane Doe, verified. Asked where order 45281 is (done); wants to return order 45281. "
                   "Annoyed. Handed over: asked for a person.",
        "reason": "caller_request",
        "reason_text": "asked for a person",
        "queue": "general",
        "priority": 0,
        "channel": "chat",
        "call_id": session.call_id,
        "caller_id": JANE,
        "contact_id": session.contact_id,
        "customer": {"id": 1, "name": "Jane Doe", "verified": True, "verified_by": "postcode"},
        "intents_done": [{"intent": "order_status", "status": "done", "outcome": "ok", "slots": intent}],
        "intents_pending": [{"intent": "return_item", "status": "active", "outcome": None, "slots": intent}],
        "slots": intent,
        "transcript": [{"speaker": e["speaker"], "text": e["text"], "at": e["at"]} for e in session.transcript[:-1]],
        "frustration": {"last": 0.55, "max": 0.55, "level": "annoyed", "explanation": "louder than usual"},
    }
    assert json.dumps(r.handoff.to_dict()) == json.dumps(expected)
    assert r.handoff.transcript[-1].text == "this is useless, let me talk to a real person"
    session.end("handoff")
    with engine.database.session() as s:
        stored = s.get(Contact, session.contact_id)
        assert stored is not None and stored.handoff == expected


def test_human_only_intent_goes_to_its_queue(engine):
    session = engine.new_call(channel="chat")
    session.start()
    r = session.handle(Turn(text="the app keeps crashing when I log in"))
    assert r.action == "handoff"
    assert r.handoff.queue == "tech"
    assert r.handoff.reason == "human_only"


def test_frustration_signal_offers_a_human_then_hands_off_with_priority(engine):
    session, _ = start_known(engine, JANE)
    r = session.handle(Turn(text="where is my order", signals=TurnSignals(frustration=0.9)))
    assert r.style == "calm"
    assert "colleague" in r.text.lower()
    r = session.handle(Turn(text="yes please"))
    assert r.action == "handoff"
    assert r.handoff.reason == "frustration"
    assert r.handoff.priority > 0
    assert r.handoff.frustration.max == pytest.approx(0.9)


def test_two_misunderstandings_in_a_row_hand_off(engine):
    session = engine.new_call(channel="chat")
    session.start()
    r1 = session.handle(Turn(text="what's the weather like on mars"))
    assert r1.action == "continue"
    r2 = session.handle(Turn(text="tell me a joke about penguins"))
    assert r2.action == "handoff"
    assert r2.handoff.reason == "not_understood"


def test_repeat_says_the_last_thing_again(engine):
    session = engine.new_call(channel="chat")
    greeting = session.start()
    r = session.handle(Turn(text="sorry can you repeat that"))
    assert r.text == greeting.text


def test_goodbye_ends_the_call_and_closes_the_contact(engine):
    session = engine.new_call(channel="chat", caller_id="+15559999999")
    session.start()
    r = session.handle(Turn(text="thanks bye"))
    assert r.action == "hangup"
    session.end("bot_hangup")
    with engine.database.session() as s:
        contact = s.get(Contact, session.contact_id)
        assert contact.ended_at is not None
        assert contact.caller_id == "+15559999999"
        assert any(t["speaker"] == "caller" for t in contact.transcript)


def test_known_caller_is_asked_about_a_recent_matter_without_its_details(engine):
    """A caller ID is easily spoofed: before verification the greeting names neither the caller nor the
    matter (John's open return for order 63950); the details come after the PIN."""
    session = engine.new_call(channel="chat", caller_id=JOHN)
    r = session.start()
    assert "contacted us recently" in r.text and session.state.expect.value == "recall"
    r_yes = session.handle(Turn(text="yes"))
    for text in (r.text, r_yes.text):
        assert "John" not in text and "Smith" not in text and "63950" not in text and "6 3 9 5 0" not in text
        assert "return" not in text.lower()
    assert session.state.expect.value == "verify_factor"
    r = session.handle(Turn(dtmf="1234"))
    assert session.state.verified and "John" in r.text
    assert "63950" in r.text or "6 3 9 5 0" in r.text


def test_known_caller_greeting_does_not_say_the_name(engine):
    r = engine.new_call(channel="chat", caller_id=JANE).start()
    assert "Jane" not in r.text and "Doe" not in r.text and "automated assistant" in r.text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "x" * 10_000,
        "🙂🙂🔥",
        "'; DROP TABLE customers; --",
        "Wo ist meine Bestellung, bitte?",
        "\x00\x01\x02",
    ],
)
def test_bad_input_gets_a_polite_answer_and_changes_nothing(engine, text):
    session = engine.new_call(channel="chat")
    session.start()
    before = audit_rows(engine)
    r = session.handle(Turn(text=text))
    assert r.text
    assert r.action in ("continue", "handoff")
    assert audit_rows(engine) == before
    with engine.database.session() as s:
        assert s.scalar(select(func.count()).select_from(Customer)) > 0


def test_every_turn_has_a_readable_decision_trace(engine):
    session, _ = start_known(engine, JANE)
    r = session.handle(Turn(text="where's my order"))
    assert r.trace["nlu"]["scores"]
    assert any("verification" in s for s in r.trace["steps"])


def test_goodbye_while_the_bot_waits_for_a_detail_ends_the_call(engine):
    session, _ = start_known(engine, JANE)
    session.handle(Turn(text="where is my order"))
    session.handle(Turn(dtmf="4321"))
    assert session.state.expect.value == "slot"
    r = session.handle(Turn(text="never mind, bye"))
    assert r.action == "hangup"
    assert session.end("bot_hangup") == "unresolved"


def test_a_call_handed_back_by_a_supervisor_goes_on_where_it_was(engine):
    session = engine.new_call(channel="sip")
    session.start()
    asked = session.handle(Turn(text="where is my order")).text
    assert asked.endswith("What is the phone number on your account?")
    back = session.resume()  # a supervisor took the call over, then handed it back
    assert back.text == "I'm back. What is the phone number on your account?", back.text
    assert back.action == "continue" and "handed back" in back.trace["rule"]
    fresh = engine.new_call(channel="sip")
    fresh.start()
    assert fresh.resume().text.startswith("I'm back. ")  # nothing pending: it asks how it can help
