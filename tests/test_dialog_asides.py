"""A request said inside an answer is never lost (issue 12): at every question the bot asks, "yes, and can you also
reset my password" answers the question and queues the request after the current one (at once when the caller
rejected the current one), the next reply says it waits, an answer to an identity question is used as one and lends
the request none of its values, and the request still waits for verification. Real NLU trained from the bundled
domain, real SQLite file (dialogs/manager/asides.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dialogs.engine import BotReply, DialogEngine, DialogSession, Turn, TurnSignals
from dialogs.manager.consent import RecordingConsent
from dialogs.manager.state import Expect
from dialogs.nlu.entities import MASK

JANE = "+15551230001"  # the demo's Jane Doe: PIN 4321, postcode 94107, born 1985-04-12, order 45281, a subscription
WAITS = "I'll help with your password after this."


def _call(engine: DialogEngine, *turns: Any, caller: str | None = JANE, channel: str = "chat",
          recall: str = "no") -> tuple[DialogSession, list[BotReply]]:
    """A call; ``recall`` answers the greeting's "You contacted us recently" question first (Jane's caller ID)."""
    session = engine.new_call(channel=channel, caller_id=caller)
    session.start()
    if caller == JANE and recall:
        session.handle(Turn(text=recall))
    replies = [session.handle(t if isinstance(t, Turn) else Turn(text=t)) for t in turns]
    return session, replies


def _agenda(session: DialogSession) -> list[str]:
    return [t.intent for t in session.state.agenda]


def test_confirmation_yes_runs_the_step_and_the_request_said_with_it_follows(engine: DialogEngine) -> None:
    session, [*_, reply] = _call(engine, "I want to cancel my subscription", Turn(dtmf="4321"),
                                 "yes, and can you also reset my password")
    assert "queued from the answer: reset_password" in reply.trace["steps"]
    assert "subscription is cancelled" in reply.text
    assert reply.text.endswith("Shall I send a password reset link to the e-mail address on your account?")
    assert session.state.current is not None and session.state.current.intent == "reset_password"


def test_confirmation_no_with_another_request_drops_the_current_and_starts_the_other_at_once(
        engine: DialogEngine) -> None:
    session, [*_, reply] = _call(engine, "I want to cancel my subscription", Turn(dtmf="4321"),
                                 "no, but I want to change my address")
    assert "queued from the answer (at once): change_address" in reply.trace["steps"]
    assert reply.text.startswith("Okay, I haven't changed anything.") and "new address" in reply.text
    assert [(t.intent, t.status) for t in session.state.finished] == [("cancel_subscription", "cancelled")]


def test_a_correction_with_a_request_corrects_and_queues_it(engine: DialogEngine) -> None:
    session, [*_, reply] = _call(engine, "I want to return order 45281", Turn(dtmf="4321"), "wrong size",
                                 "no, the order is 12034, and also reset my password")
    assert "corrected order_id: confirm again" in reply.trace["steps"]
    assert reply.text == f"{WAITS} Just to confirm: you'd like to return order 1 2 0 3 4, reason: wrong size. " \
                         "Is that right?"
    assert _agenda(session) == ["reset_password"]  # "the order is 12034" (read as an order request) is the answer


def test_what_should_i_change_takes_the_detail_and_the_request_waits(engine: DialogEngine) -> None:
    session, [*_, reply] = _call(engine, "I want to return order 45281", Turn(dtmf="4321"), "wrong size", "no",
                                 "the reason, and also reset my password")
    # "the reason" reads as a technical problem to the NLU: it named the detail, so it is no request.
    assert [i["name"] for i in reply.intents] == ["technical_support", "reset_password"]
    assert reply.text == f"Okay, let's correct that. {WAITS} What is the reason for the return?"
    assert _agenda(session) == ["reset_password"]


def test_a_free_text_answer_keeps_only_its_own_words(engine: DialogEngine) -> None:
    session, [*_, reply] = _call(engine, "I want to return order 45281", Turn(dtmf="4321"),
                                 "it's the wrong size, and can you also reset my password")
    assert session.state.current is not None and session.state.current.slots["return_reason"] == "it is the wrong size"
    assert reply.text.startswith(WAITS) and "reason: it is the wrong size. Is that right?" in reply.text
    assert _agenda(session) == ["reset_password"]


def test_a_slot_answer_with_a_request_says_it_waits_before_the_next_question(engine: DialogEngine) -> None:
    session, [*_, reply] = _call(engine, "I moved, please change my address", Turn(dtmf="4321"),
                                 "12 Oak Street, Chicago 60614, and where is my order 45281")
    assert reply.text.startswith("I'll help with your order after this. So the new address is 12 Oak Street")
    assert [(t.intent, t.slots) for t in session.state.agenda] == [("order_status", {"order_id": "45281"})]
    done = session.handle(Turn(text="yes"))
    assert "action change_address -> ok" in done.trace["steps"] and "4 5 2 8 1 was shipped" in done.text


def test_the_identity_answer_verifies_and_the_request_waits_without_its_values(engine: DialogEngine) -> None:
    session, [_, reply] = _call(engine, "where is my order 45281",
                                "my date of birth is April 12 1985 and where is my refund")
    steps = reply.trace["steps"]
    assert "verified by date_of_birth" in steps
    # The current request first, then the one said with the answer, which took no date from it.
    assert steps.index("done order_status (ok)") < steps.index("start billing_question")
    billing = session.state.current
    assert billing is not None and billing.intent == "billing_question" and "date" not in billing.slots
    assert reply.heard == MASK and "1985" not in str(reply.trace)  # the whole identity answer stays masked


def test_a_wrong_identity_answer_counts_and_the_request_still_waits_for_verification(engine: DialogEngine) -> None:
    session, [_, reply] = _call(engine, "where is my order 45281", "94108 and I also want to reset my password")
    assert not session.state.verified and session.state.verify_attempts == 1
    assert reply.text.startswith("Sorry, that doesn't match") and reply.text.endswith(WAITS)
    assert _agenda(session) == ["reset_password"]
    assert not any(s.startswith("action") for s in reply.trace["steps"])


def test_a_request_alone_is_never_read_as_an_identity_answer(engine: DialogEngine) -> None:
    session, [_, reply] = _call(engine, "where is my order 45281", "and I also want to reset my password 94107")
    assert not session.state.verified and session.state.verify_attempts == 0
    assert "identity answer with a request beside it" not in reply.trace["steps"]


def test_the_phone_number_answer_finds_the_account_and_the_request_waits(engine: DialogEngine) -> None:
    session, [_, reply] = _call(engine, "where is my order 45281",
                                "my number is 555 123 0001 and I also want to reset my password", caller=None)
    assert "account found by phone number" in reply.trace["steps"]
    assert reply.text.startswith(WAITS) and session.state.expect is Expect.VERIFY_FACTOR
    assert [(t.intent, t.slots) for t in session.state.agenda] == [("reset_password", {})]


def test_yes_to_the_remembered_matter_keeps_it_and_the_request_follows(engine: DialogEngine) -> None:
    session, [reply, verified] = _call(engine, "yes, and can you also reset my password", Turn(dtmf="4321"),
                                       recall="")
    assert "caller confirmed the recalled matter" in reply.trace["steps"]
    assert "start order_status" in reply.trace["steps"]  # the recalled order, verified first
    assert WAITS in reply.text and reply.text.endswith("type your PIN on the keypad.")
    assert "4 5 2 8 1 was shipped" in verified.text and verified.text.endswith("password reset link to the "
                                                                                "e-mail address on your account?")


def test_yes_to_just_to_check_keeps_the_checked_request_and_queues_the_other(engine: DialogEngine) -> None:
    session, [check, reply] = _call(engine, "i need to check on my folder", "yes, and also reset my password")
    assert session.state.current is not None and session.state.current.intent == "billing_question"
    assert _agenda(session) == ["reset_password"] and WAITS in reply.text


def test_declining_a_person_with_a_request_queues_it_and_accepting_puts_it_in_the_packet(
        engine: DialogEngine) -> None:
    angry = Turn(text="where is my order, this is ridiculous", signals=TurnSignals(frustration=0.95))
    session, [offer, reply] = _call(engine, angry, "no, but can you reset my password")
    assert session.state.question is not None and offer.trace["expect"] == "offer_human"
    assert _agenda(session) == ["reset_password"] and WAITS in reply.text
    session, [_, handed] = _call(engine, angry, "yes, and it's also about my password")
    assert handed.action == "handoff" and handed.handoff is not None
    assert [t.intent for t in handed.handoff.intents_pending] == ["order_status", "reset_password"]


def test_declining_the_recording_with_a_request_starts_it(engine: DialogEngine) -> None:
    engine.options.recording = RecordingConsent()
    session, [reply] = _call(engine, "no recording please, and where is my order 45281", channel="sip", recall="")
    assert reply.recording_declined
    assert reply.text.startswith("Understood, this call is not recorded.") and "confirm who you are" in reply.text
    assert session.state.current is not None and session.state.current.intent == "order_status"


class _NoAgents:
    def __init__(self) -> None:
        self.packets: list[dict[str, Any]] = []

    def agents_available(self, queue: str) -> bool:
        return False

    def request_callback(self, *, call_id: str, number: str, queue: str, reason: str, packet: dict[str, Any]) -> int:
        self.packets.append(packet)
        return len(self.packets)


def test_a_request_said_at_the_callback_offer_goes_into_the_callback_packet(engine: DialogEngine) -> None:
    desk = _NoAgents()
    engine.desk = desk
    session, [offer, _, done] = _call(engine, "I want to speak to a person", "yes, and it's also about my password",
                                      "yes")
    assert "none of my colleagues" in offer.text and done.action == "hangup"
    assert [i["intent"] for i in desk.packets[0]["intents_pending"]] == ["reset_password"]


def test_a_request_heard_unsurely_in_an_answer_is_asked_about_later_not_queued(engine: DialogEngine) -> None:
    unsure = Turn(text="yes, and can you also reset my password", signals=TurnSignals(transcript_confidence=0.3))
    session, [*_, reply, done] = _call(engine, "I want to cancel my subscription", Turn(dtmf="4321"), unsure,
                                       Turn(text="no"))
    assert "request in the answer heard unsurely: reset_password; asked once the requests are done" in \
        reply.trace["steps"]
    assert reply.text.endswith("Did you also want to reset your password?")
    assert _agenda(session) == [] and reply.expects == "yes_no"
    assert "caller does not want reset_password: dropped" in done.trace["steps"]


def test_the_clause_holding_a_slot_answer_is_no_request(engine: DialogEngine) -> None:
    session, [*_, reply] = _call(engine, "I want to return something", Turn(dtmf="4321"),
                                 "it's 12034, and can you reset my password")
    assert [i["name"] for i in reply.intents] == ["reset_password"]  # "it's 12034" is the answer: no request
    assert reply.text == f"{WAITS} What is the reason for the return?"
    assert _agenda(session) == ["reset_password"]


def test_a_free_text_answer_is_its_first_clause_whatever_request_the_nlu_reads_in_it(engine: DialogEngine) -> None:
    session, [*_, alone] = _call(engine, "I want to return order 45281", Turn(dtmf="4321"), "it doesn't work")
    assert [i["name"] for i in alone.intents] == ["technical_support"]
    assert "reason: it doesn't work. Is that right?" in alone.text and _agenda(session) == []  # no hand-off later
    session, [*_, both] = _call(engine, "I want to return order 45281", Turn(dtmf="4321"),
                                "it doesn't work, and can you reset my password")
    assert both.text == f"{WAITS} Just to confirm: you'd like to return order 4 5 2 8 1, reason: it does not work. " \
                        "Is that right?"
    assert _agenda(session) == ["reset_password"]


# --------------------------------------------------------------- answers with something else in them (session 14)

@pytest.mark.parametrize("answer", ["my postcode is 94107", "it's 94107", "i was born on april 12 1985",
                                    "my pin is 4321"])
def test_an_identity_answer_in_a_sentence_verifies_and_starts_no_request(engine: DialogEngine, answer: str) -> None:
    # The NLU reads a request in each (change_address, order_status, billing_question): its words without the value
    # do not say it, or they name the factor, so the turn is the identity answer and nothing else.
    session, [_, reply] = _call(engine, "where is my order 45281", answer)
    assert session.state.verified and "4 5 2 8 1 was shipped" in reply.text
    assert [t.intent for t in session.state.finished] == ["order_status"] and _agenda(session) == []


def test_a_number_said_in_the_pending_request_is_the_requests_never_an_identity_answer(engine: DialogEngine) -> None:
    # 94107 is Jane's postcode, said as an order number inside the same order request.
    session, [_, reply, again] = _call(engine, "where is my order 45281", "where is my order 94107", "94107")
    assert reply.trace["verified"] is False and "verified by postcode" not in reply.trace["steps"]
    assert session.state.verify_attempts == 0
    assert reply.text == "I'll help with your order as soon as I've confirmed who you are. Please tell me the " \
                         "postcode of your account, your date of birth, or type your PIN on the keypad."
    assert "order_id of order_status said again: kept" in reply.trace["steps"] and reply.heard == MASK
    assert "verified by postcode" in again.trace["steps"]  # said alone, it is the answer
    assert "couldn't find an order with the number 9 4 1 0 7" in again.text  # the order the caller named


def test_the_pending_request_said_again_beside_an_identity_answer_keeps_its_number(engine: DialogEngine) -> None:
    session, [_, reply] = _call(engine, "where is my order", "my postcode is 94108 and where is my order 45281")
    assert not session.state.verified and session.state.verify_attempts == 1  # 94108 was the answer, and wrong
    assert session.state.current is not None and session.state.current.slots == {"order_id": "45281"}
    assert reply.text.startswith("Sorry, that doesn't match")


@pytest.mark.parametrize("answer", ["94107, where is my order 45281", "94107. Where is my order 45281"])
def test_an_identity_answer_before_a_request_after_a_comma_or_full_stop_verifies(engine: DialogEngine,
                                                                                  answer: str) -> None:
    # The pending order check said again: its own number is kept, the postcode answers.
    session, [_, reply] = _call(engine, "where is my order", answer)
    assert "verified by postcode" in reply.trace["steps"] and "4 5 2 8 1 was shipped" in reply.text
    # Another request waits with the number said in its own clause, never the answer's.
    session, [_, reply] = _call(engine, "I want to change my address", answer)
    assert "verified by postcode" in reply.trace["steps"] and reply.text.endswith(
        "I'll help with your order after this. What is the new address, with the street, city and postcode?")
    assert [(t.intent, t.slots) for t in session.state.agenda] == [("order_status", {"order_id": "45281"})]
    assert reply.heard == MASK


def test_a_request_beside_an_identity_answer_keeps_no_value_of_the_answer(engine: DialogEngine) -> None:
    session, [_, reply] = _call(engine, "I want to change my address", "it's 94107 and where is my order")
    assert "verified by postcode" in reply.trace["steps"]
    assert [(t.intent, t.slots) for t in session.state.agenda] == [("order_status", {})]


def test_a_reason_with_a_question_about_the_other_order_takes_the_reason_and_queues_the_other_order(
        kb_engine: DialogEngine) -> None:
    # Jane has two orders: 12034 (delivered, returned here) and 45281. The NLU the bot runs with (it learns the
    # knowledge base's questions too) reads two clauses here; the one of the other tests reads one.
    session, [*_, reply] = _call(kb_engine, "I want to return order 12034", Turn(dtmf="4321"),
                                 "it was damaged and where is my other order")
    assert reply.text == "I'll help with your order after this. Just to confirm: you'd like to return order " \
                         "1 2 0 3 4, reason: it was damaged. Is that right?"
    assert "the other order: 45281" not in reply.trace["steps"]  # no correction of the return's order
    assert [(t.intent, t.slots) for t in session.state.agenda] == [("order_status", {"order_id": "45281"})]
    done = session.handle(Turn(text="yes"))
    assert "action start_return -> ok" in done.trace["steps"]
    assert "Now, your order. Your order 4 5 2 8 1 was shipped" in done.text


def test_no_i_meant_the_other_order_is_still_a_correction(kb_engine: DialogEngine) -> None:
    session, [*_, reply] = _call(kb_engine, "I want to return order 12034", Turn(dtmf="4321"), "wrong size",
                                 "no, I meant the other order")
    assert "the other order: 45281" in reply.trace["steps"] and _agenda(session) == []


def test_moving_on_to_a_waiting_request_says_so_before_its_question(engine: DialogEngine) -> None:
    session, [_, reply] = _call(engine, "where is my order 45281", "94107 and I also want to reset my password")
    assert reply.text.endswith("expected Sunday. Now, your password. Shall I send a password reset link to the "
                               "e-mail address on your account?")
    assert "moved on to the waiting reset_password" in reply.trace["steps"]
    # a request of the first turn goes on as before: no lead-in
    session, [_, first] = _call(engine, "where is my order 45281", "94107")
    assert "Now," not in first.text


def test_a_request_heard_unsurely_says_why_with_the_shared_test(engine: DialogEngine) -> None:
    from dialogs.manager import asides

    session, _ = _call(engine, Turn(text="hello", signals=TurnSignals(transcript_confidence=0.3)))
    opts = engine.options
    session._transcript_confidence = opts.confirm_transcript_below - 0.01
    assert asides.heard_unsurely(session, None) == \
        f"transcript confidence {opts.confirm_transcript_below - 0.01:.2f} < {opts.confirm_transcript_below}"
    session._transcript_confidence = None
    assert asides.heard_unsurely(session, opts.confirm_heard_below - 0.01) == \
        f"words of the request heard at {opts.confirm_heard_below - 0.01:.2f} < {opts.confirm_heard_below}"
    assert asides.heard_unsurely(session, opts.confirm_heard_below) is None


@pytest.fixture(scope="module")
def with_knowledge() -> tuple:
    from dialogs.domain import load_domain
    from dialogs.knowledge.dialog import Knowledge
    from dialogs.nlu import NLU

    domain = load_domain()
    knowledge = Knowledge.for_domain(domain)
    return domain, NLU.train(domain, questions=knowledge), knowledge


@pytest.fixture()
def kb_engine(with_knowledge: tuple, tmp_path: Path) -> DialogEngine:
    from dialog_helpers import NOW

    from dialogs.db.engine import ensure_database
    from dialogs.engine import EngineOptions

    domain, nlu, knowledge = with_knowledge
    db = ensure_database(f"sqlite:///{tmp_path / 'bot.db'}", seed_demo=True, now=NOW)
    return DialogEngine(domain, nlu, db, EngineOptions(), clock=lambda: NOW, seed=3, knowledge=knowledge)


HOURS = "Our customer service team is available Monday to Friday"


def test_yes_with_a_public_question_runs_the_step_then_answers_it(kb_engine: DialogEngine) -> None:
    session, [*_, reply] = _call(kb_engine, "I want to cancel my subscription", Turn(dtmf="4321"),
                                 "yes, and what are your opening hours")
    assert "action cancel_subscription -> ok" in reply.trace["steps"]
    assert reply.text.index("subscription is cancelled") < reply.text.index(HOURS)
    assert reply.text.endswith("Is there anything else I can help you with?")
    assert session.knowledge_answered == ["opening_hours"]


def test_a_detail_with_a_public_question_fills_the_slot_and_answers_before_the_next_question(
        kb_engine: DialogEngine) -> None:
    session, [*_, reply] = _call(kb_engine, "I want to return something", Turn(dtmf="4321"),
                                 "it's 45281, and do you ship to Canada")
    assert session.state.current is not None and session.state.current.slots == {"order_id": "45281"}
    assert reply.text.startswith("We ship to Canada") and reply.text.endswith("What is the reason for the return?")


def test_an_identity_answer_with_a_public_question_verifies_or_counts_and_the_question_is_answered(
        kb_engine: DialogEngine) -> None:
    session, [_, reply] = _call(kb_engine, "where is my order 45281", "94107, and what are your opening hours")
    assert "verified by postcode" in reply.trace["steps"] and reply.heard == MASK
    assert reply.text.index("4 5 2 8 1 was shipped") < reply.text.index(HOURS)
    # a wrong answer still counts; the public answer is given, nothing of the account
    session, [_, wrong] = _call(kb_engine, "where is my order 45281", "94108, and what are your opening hours")
    assert not session.state.verified and session.state.verify_attempts == 1
    assert wrong.text.startswith(HOURS) and wrong.text.endswith("Please try again with your postcode, your date of "
                                                                "birth, or your PIN.")
    assert "4 5 2 8 1" not in wrong.text and wrong.trace["knowledge"][0]["entry"] == "opening_hours"


def test_a_public_question_alone_at_a_question_is_answered_and_the_question_asked_again(
        kb_engine: DialogEngine) -> None:
    session, [*_, reply] = _call(kb_engine, "I want to cancel my subscription", Turn(dtmf="4321"),
                                 "what are your opening hours")
    assert reply.text.startswith(HOURS) and reply.text.endswith("cancel your subscription?")
    assert "public question beside the answer" not in reply.trace["steps"]


def test_where_is_it_after_the_order_number_is_that_orders_check_not_a_public_question(
        kb_engine: DialogEngine) -> None:
    session, [*_, reply] = _call(kb_engine, "where is my order", "94107", "45281 and where is it")
    assert reply.text.startswith("Your order 4 5 2 8 1 was shipped") and "don't know" not in reply.text
    assert reply.trace.get("knowledge") in (None, []) and _agenda(session) == []
    session, [reply] = _call(kb_engine, "45281 and where is it")  # the first turn: the check of that order
    assert session.state.current is not None and session.state.current.slots == {"order_id": "45281"}


def test_a_reason_that_resembles_a_public_question_is_the_reason_unless_asked_as_one(kb_engine: DialogEngine) -> None:
    # "the box was crushed" is close to the damaged-item entry's question (the NLU reads faq): at the reason question
    # it is the reason.
    session, [*_, reply] = _call(kb_engine, "I want to return order 45281", Turn(dtmf="4321"), "the box was crushed")
    assert reply.text == "Just to confirm: you'd like to return order 4 5 2 8 1, reason: the box was crushed. " \
                         "Is that right?"
    assert session.knowledge_answered == []
    session, [*_, asked] = _call(kb_engine, "I want to return order 45281", Turn(dtmf="4321"), "was the box crushed?")
    assert session.knowledge_answered == ["damaged_item"] and asked.text.endswith("What is the reason for the return?")
    session, [*_, policy] = _call(kb_engine, "I want to return order 45281", Turn(dtmf="4321"),
                                  "what is your return policy")
    assert session.knowledge_answered == ["return_policy"] and policy.text.endswith("What is the reason for the return?")


DAMAGED = "tell us within 48 hours of delivery"


def test_a_question_that_names_no_topic_is_asked_with_the_clause_before_it(kb_engine: DialogEngine) -> None:
    # "what do i do" alone is nearest the out-of-scope examples; with "it came broken" it is the damaged-item entry.
    session, [*_, reply] = _call(kb_engine, "I want to return order 12034", "It came broken, what do I do?")
    assert reply.trace["nlu"]["segments"] == ["it came broken", "what do i do"]
    assert reply.text == "I'll help with the return as soon as I've confirmed who you are. Sorry about that: " \
                         f"{DAMAGED} and we'll send a free replacement or a full refund. Please tell me the postcode " \
                         "of your account, your date of birth, or type your PIN on the keypad."
    assert session.knowledge_answered == ["damaged_item"] and reply.trace["knowledge"][0]["entry"] == "damaged_item"
    # At the reason question the first clause is the reason, and the question is answered before the confirmation.
    session, [*_, reply] = _call(kb_engine, "I want to return order 12034", Turn(dtmf="4321"),
                                 "It came broken, what do I do?")
    assert DAMAGED in reply.text and reply.text.endswith("reason: damaged. Is that right?")
    # The first turn: the answer, then the return.
    session, [reply] = _call(kb_engine, "It came broken, what do I do?")
    assert reply.text.startswith("Sorry about that: " + DAMAGED) and "postcode" in reply.text
    assert [t.intent for t in session._all_tasks()] == ["return_item"]


def test_a_question_the_knowledge_base_answers_alone_is_not_asked_with_the_clause_before(kb_engine: DialogEngine) -> None:
    from dialogs.manager.faq import ask

    knowledge = kb_engine.knowledge
    assert knowledge is not None
    assert ask(knowledge, "what do i do", None).match is None  # nothing before it: "I don't know"
    assert ask(knowledge, "what do i do", "it came broken").match.entry.id == "damaged_item"  # type: ignore[union-attr]
    # answered alone: the clause before it is not asked about ("the box was crushed" would be damaged items)
    assert ask(knowledge, "what are your opening hours", "the box was crushed").match.entry.id == "opening_hours"  # type: ignore[union-attr]
