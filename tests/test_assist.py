"""Agent assist: the customer's card read from the demo customer database (a real SQLite file), and its API
route on the real app (an agent reads only her own call's card)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from app_helpers import model_less_app
from auth_helpers import add_user, login
from demo_db import NOW, demo_copy
from fastapi.testclient import TestClient
from handoff_helpers import customer, handoff_packet
from sqlalchemy import func, select

from dialogs.db.engine import Database
from dialogs.db.models import AuditLog, Contact, Order, Return, Subscription
from dialogs.db.repository import close_contact, open_contact
from dialogs.domain.schema import Domain
from dialogs.knowledge import Retriever, load_knowledge
from dialogs.knowledge.dialog import Knowledge
from dialogs.manager.handoff import HandoffIntent, HandoffPacket, TranscriptLine
from dialogs.nlu import NLU
from voicebot.assist.card import customer_card, verified_customer
from voicebot.assist.next_action import action_of, next_best_action
from voicebot.assist.suggest import knowledge_suggestions, last_caller_words
from voicebot.assist.summary import BridgedTurn, running_summary
from voicebot.assist.wrapup import prefill
from voicebot.config import Settings
from voicebot.redaction import Redactor


def test_card_lists_orders_open_returns_subscriptions_and_past_contacts(tmp_path: Path,
                                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    db = Database(demo_copy(tmp_path, tmp_path_factory))
    with db.session() as s:
        customer_id = s.scalar(select(Return.customer_id).where(Return.status == "label_sent").limit(1))
        assert customer_id is not None
        past = open_contact(s, "sip", None, NOW - timedelta(days=3), customer_id=customer_id)
        close_contact(s, past, NOW - timedelta(days=3) + timedelta(minutes=4), "resolved",
                      "Asked where order 12345 is. Told it ships Friday.", [], [], None, None)
        now_call = open_contact(s, "sip", None, NOW, customer_id=customer_id)
        close_contact(s, now_call, NOW, "handoff", "this call", [], [], None, None)
        n_orders = s.scalar(select(func.count()).select_from(Order).where(Order.customer_id == customer_id))
    with db.session() as s:
        card = customer_card(s, customer_id, exclude_contact=now_call)
        assert customer_card(s, 10**9) is None
    assert card is not None
    assert len(card.orders) == min(5, n_orders or 0)
    assert [o.placed_at for o in card.orders] == sorted((o.placed_at for o in card.orders), reverse=True)
    assert card.open_returns and all(r.status != "refunded" for r in card.open_returns)
    summaries = [c.summary for c in card.past_contacts]
    assert "Asked where order 12345 is. Told it ships Friday." in summaries
    assert "this call" not in summaries  # the call in progress is not a past contact
    data = card.to_dict()
    assert data["name"] == card.name and isinstance(data["orders"][0]["placed_at"], str)
    db.dispose()


def test_only_a_verified_customer_has_a_card() -> None:
    ann = {"id": 7, "name": "Ann", "verified": True, "verified_by": "postcode"}
    packet = {"customer": ann, "contact_id": 3}
    assert verified_customer(HandoffPacket.from_dict(packet)) == (7, 3)
    unverified = {**packet, "customer": {**ann, "verified": False}}
    assert verified_customer(HandoffPacket.from_dict(unverified)) == (None, 3)
    assert verified_customer(HandoffPacket.from_dict({"customer": None, "contact_id": None})) == (None, None)
    assert verified_customer(HandoffPacket.from_dict(None)) == (None, None)


def test_the_packet_comes_back_typed_from_its_json() -> None:
    packet = handoff_packet("Caller Jane Doe, verified. Wants to return order 12034.", caller_id="+15551230001",
                            contact_id=4, customer=customer("Jane Doe", True, id=1, verified_by="pin"),
                            intents_pending=(HandoffIntent("return_item", "active", None, {"order_id": "12034"}),),
                            slots={"order_id": "12034"},
                            transcript=(TranscriptLine("caller", "I want to return order 12034", "2026-03-12"),))
    assert HandoffPacket.from_dict(packet.to_dict()) == packet
    # Old records lack fields, a hostile one mistypes them: empty values, never an exception.
    assert HandoffPacket.from_dict({"customer": {"id": "7"}, "intents_pending": "x", "priority": "1"}).customer is None


def test_card_api_serves_only_the_agents_own_call(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = Settings(agents=[{"id": "alice", "name": "Alice", "contact": "sip:alice@127.0.0.1:5999"},  # type: ignore[list-item]
                                {"id": "bob", "name": "Bob", "contact": "sip:bob@127.0.0.1:5998"}],  # type: ignore[list-item]
                        queues=[{"name": "general"}])  # type: ignore[list-item]
    customers = Database(demo_copy(tmp_path, tmp_path_factory))
    with customers.session() as s:
        customer_id = s.scalar(select(Order.customer_id).where(Order.customer_id.is_not(None)).limit(1))
    parts = model_less_app(tmp_path / "voicebot.db", settings, store=False, queues=True, session=customers.session)
    service = parts.service
    assert service is not None
    add_user(parts.engine, "alice", "agent")
    add_user(parts.engine, "sup", "supervisor")
    with TestClient(parts.create()) as c:
        alice = login(c, "alice")
        no_call = c.get("/api/agents/alice/card", headers=alice)
        assert no_call.status_code == 409 and no_call.json()["detail"] == "alice has no call"
        assert c.get("/api/agents/bob/card", headers=alice).status_code == 403  # not her call
        assert c.get("/api/agents/nobody/card", headers=login(c, "sup")).status_code == 404
        packet = {"customer": {"id": customer_id, "name": "X", "verified": False, "verified_by": None},
                  "contact_id": None}
        service.current["alice"] = {"call_id": "call-1", "status": "connected", "handoff": packet}
        assert c.get("/api/agents/alice/card", headers=alice).json() == {"call_id": "call-1", "verified": False}
        packet["customer"]["verified"] = True  # type: ignore[index]
        body = c.get("/api/agents/alice/card", headers=alice).json()
        assert body["verified"] is True and body["card"]["id"] == customer_id and body["card"]["orders"]
    customers.dispose()


def test_wrap_up_is_prefilled_from_the_running_summary() -> None:
    packet = HandoffPacket.from_dict({
        "summary": "Caller Ann Lee, verified. Wants to return order 63950. Annoyed.",
        "intents_done": [{"intent": "order_status"}], "intents_pending": [{"intent": "start_return"}]})
    turns = [BridgedTurn("caller", "The shoes are too small."), BridgedTurn("agent", "I will start the return."),
             BridgedTurn("agent", "Start a return for order 63950: ok (rma R1)", "start_return", "ok")]
    form = prefill(packet, running_summary(packet, turns, None))
    assert prefill(packet, running_summary(packet, turns[:2], None)).disposition == "follow-up"
    assert form.disposition == "resolved" and form.intents == ("order_status", "start_return")  # the agent did it
    assert form.summary == ('Caller Ann Lee, verified. The caller told the agent: "The shoes are too small." '
                            "The agent ran: Start a return for order 63950: ok (rma R1).")
    asked = HandoffPacket.from_dict({"summary": "Caller asked for a person."})
    assert prefill(asked, running_summary(asked, [], None)).disposition == "resolved"
    empty = HandoffPacket.from_dict(None)
    assert prefill(empty, running_summary(empty, [], None)).summary == (
        "The caller was handed to an agent. The agent took the call.")


def test_wrap_up_goes_into_the_contact_history_audited(tmp_path: Path,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = Settings(agents=[{"id": "alice", "name": "Alice", "contact": "sip:alice@127.0.0.1:5999"}],  # type: ignore[list-item]
                        queues=[{"name": "general"}])  # type: ignore[list-item]
    customers = Database(demo_copy(tmp_path, tmp_path_factory))
    with customers.session() as s:
        contact_id = open_contact(s, "sip", None, NOW)
    parts = model_less_app(tmp_path / "voicebot.db", settings, store=False, queues=True, session=customers.session)
    service = parts.service
    assert service is not None
    add_user(parts.engine, "alice", "agent")
    with TestClient(parts.create()) as c:
        alice = login(c, "alice")
        assert c.get("/api/agents/alice/wrapup", headers=alice).json()["detail"] == "alice has no call to wrap up"
        packet = {"summary": "Caller wants a refund. Calm.", "contact_id": contact_id,
                  "intents_pending": [{"intent": "refund"}]}
        service.last["alice"] = {"call_id": "call-1", "status": "connected", "handoff": packet}
        got = c.get("/api/agents/alice/wrapup", headers=alice).json()
        assert got["form"] == {"disposition": "follow-up", "intents": ["refund"],
                               "summary": "Caller wants a refund. The agent took the call."}
        bad = c.post("/api/agents/alice/wrapup", json={**got["form"], "disposition": "done"}, headers=alice)
        assert bad.status_code == 400 and "disposition" in bad.json()["detail"]
        form = {"disposition": "resolved", "intents": ["refund"], "summary": "Refund of 63950 approved. Sent email."}
        saved = c.post("/api/agents/alice/wrapup", json=form, headers=alice)
        assert saved.status_code == 200, saved.text
        service.last["alice"] = {"call_id": "call-2", "status": "connected", "handoff": {"contact_id": 10**9}}
        gone = c.post("/api/agents/alice/wrapup", json=form, headers=alice)
        assert gone.status_code == 409 and "no contact" in gone.json()["detail"]
    with customers.session() as s:
        contact = s.get(Contact, contact_id)
        assert contact is not None and contact.summary == "Refund of 63950 approved. Sent email."
        assert contact.intents == [{"intent": "refund", "status": "done", "outcome": "resolved", "slots": {}}]
        audit = s.scalars(select(AuditLog).where(AuditLog.contact_id == contact_id)).all()
        assert [(a.actor, a.action) for a in audit] == [("agent:alice", "wrap_up")]
    customers.dispose()


KNOWLEDGE = Path(__file__).resolve().parents[1] / "dialogs" / "domains" / "retail" / "knowledge"


def test_suggestions_match_what_the_caller_said_last() -> None:
    retriever = Retriever.with_tfidf(load_knowledge(str(KNOWLEDGE)))
    packet = HandoffPacket.from_dict({"transcript": [{"speaker": "caller", "text": "I want a person", "at": ""}]})
    assert last_caller_words([], packet) == "I want a person"
    said = last_caller_words([BridgedTurn("caller", "How long do I have to cancel my order?"),
                              BridgedTurn("agent", "Let me see.")], packet)
    assert said == "How long do I have to cancel my order?"
    found = knowledge_suggestions(retriever, said)
    assert found and found[0].entry_id == "order_cancellation", found
    assert [f.score for f in found] == sorted((f.score for f in found), reverse=True)
    assert knowledge_suggestions(retriever, "") == ()


def test_suggestions_api_for_the_agents_own_call(tmp_path: Path) -> None:
    settings = Settings(agents=[{"id": "alice", "name": "Alice", "contact": "sip:alice@127.0.0.1:5999"},  # type: ignore[list-item]
                                {"id": "bob", "name": "Bob", "contact": "sip:bob@127.0.0.1:5998"}],  # type: ignore[list-item]
                        queues=[{"name": "general"}])  # type: ignore[list-item]
    knowledge = Knowledge(Retriever.with_tfidf(load_knowledge(str(KNOWLEDGE))))
    parts = model_less_app(tmp_path / "voicebot.db", settings, store=False, queues=True, knowledge=knowledge)
    service = parts.service
    assert service is not None
    add_user(parts.engine, "alice", "agent")
    with TestClient(parts.create()) as c:
        alice = login(c, "alice")
        assert c.get("/api/agents/alice/suggestions", headers=alice).status_code == 409
        assert c.get("/api/agents/bob/suggestions", headers=alice).status_code == 403
        packet = {"transcript": [{"speaker": "caller", "text": "How long do I have to cancel my order?", "at": ""}]}
        service.current["alice"] = {"call_id": "call-1", "status": "connected", "handoff": packet}
        body = c.get("/api/agents/alice/suggestions", headers=alice).json()
    assert body["said"] == "How long do I have to cancel my order?"
    assert body["knowledge"][0]["entry_id"] == "order_cancellation", body


RETURN_12034 = "The shoes from order 12034 are too small, I want to send them back."
RETURN_63950 = "The shoes from order 63950 are too small, I want to send them back."


def test_running_summary_names_requests_details_and_key_sentences(trained: tuple[Domain, NLU]) -> None:
    domain, nlu = trained
    packet = handoff_packet("Caller Jane Doe, verified. Wants to return order 12034. Handed over: asked for a person",
                            customer=customer("Jane Doe", True, id=1, verified_by="pin"),
                            intents_pending=(HandoffIntent("return_item", "active", None, {"order_id": "12034"}),),
                            slots={"order_id": "12034"})
    first = running_summary(packet, [BridgedTurn("caller", "Hello."), BridgedTurn("agent", "Hi, how can I help?")],
                            nlu.parse)
    assert first.intents == ("return_item",) and first.details == (("order_id", "12034"),)
    assert first.key_sentences == ("Hello.",) and first.caller_turns == 1  # nothing better said yet
    turns = [BridgedTurn("caller", "Hello."), BridgedTurn("caller", RETURN_12034), BridgedTurn("caller", "And I want to cancel my subscription too.")]
    later = running_summary(packet, turns, nlu.parse)
    assert later.intents == ("return_item", "cancel_subscription"), later
    assert ("return_reason", "wrong_size") in later.details, later.details
    assert later.key_sentences == (RETURN_12034, "And I want to cancel my subscription too.")
    assert later.text != first.text and "cancel subscription" in later.text and "too small" in later.text


def test_next_best_action_follows_what_the_caller_said_last(trained: tuple[Domain, NLU], tmp_path: Path,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    domain, nlu = trained
    assert action_of(domain, "return_item") == ("start_return", ("order_id", "return_reason"))
    assert action_of(domain, "technical_support") is None  # human only: nothing for the agent to run
    packet = handoff_packet("Caller John Smith, verified.", customer=customer("John Smith", True, id=2),
                            intents_pending=(HandoffIntent("return_item", "active", None, {}),))
    db = Database(demo_copy(tmp_path, tmp_path_factory))
    with db.session() as s:
        card = customer_card(s, 2)
    db.dispose()
    nothing_said = next_best_action(domain, packet, running_summary(packet, [], nlu.parse), card)
    # John's 63950 has an open return: the card proposes his other order, the reason is for the agent to ask.
    assert nothing_said is not None and nothing_said.action == "start_return", nothing_said
    assert nothing_said.because == "pending in the hand-off" and nothing_said.missing == ("return_reason",)
    said = running_summary(packet, [BridgedTurn("caller", RETURN_63950)], nlu.parse)
    found = next_best_action(domain, packet, said, card)
    assert found is not None and found.label == "Start a return for order 63950", found
    assert dict(found.slots) == {"order_id": "63950", "return_reason": "wrong_size"} and found.missing == ()
    turns = [BridgedTurn("caller", RETURN_63950),
             BridgedTurn("caller", "Please cancel my subscription as well.")]
    newest = next_best_action(domain, packet, running_summary(packet, turns, nlu.parse), card)
    assert newest is not None and newest.action == "cancel_subscription" and "cancel my subscription" in newest.because
    lost = handoff_packet("An unidentified caller. No request stated yet.")
    assert next_best_action(domain, lost, running_summary(lost, [BridgedTurn("caller", "Hello?")], nlu.parse),
                            None) is None


def test_agent_runs_the_next_action_on_her_own_bridged_call(trained: tuple[Domain, NLU], tmp_path: Path,
                                                            tmp_path_factory: pytest.TempPathFactory) -> None:
    domain, nlu = trained
    settings = Settings(agents=[{"id": "alice", "name": "Alice", "contact": "sip:alice@127.0.0.1:5999"},  # type: ignore[list-item]
                                {"id": "bob", "name": "Bob", "contact": "sip:bob@127.0.0.1:5998"}],  # type: ignore[list-item]
                        queues=[{"name": "general"}])  # type: ignore[list-item]
    customers = Database(demo_copy(tmp_path, tmp_path_factory))
    with customers.session() as s:
        contact_id = open_contact(s, "sip", "+15551230001", NOW, customer_id=1)
    parts = model_less_app(tmp_path / "voicebot.db", settings, redactor=Redactor.from_settings(settings), queues=True,
                           session=customers.session, domain=domain, nlu=nlu, clock=lambda: NOW)
    store, service = parts.store, parts.service
    assert store is not None and service is not None
    for name, role in (("alice", "agent"), ("bob", "agent"), ("sup", "supervisor")):
        add_user(parts.engine, name, role)
    packet = handoff_packet("Caller Jane Doe, verified. Wants to return order 12034.", contact_id=contact_id,
                            customer=customer("Jane Doe", True, id=1, verified_by="pin"),
                            intents_pending=(HandoffIntent("return_item", "active", None, {"order_id": "12034"}),))
    start = datetime.now(UTC)
    store.open_call("call-1", "sip", "+15551230001")
    with TestClient(parts.create()) as c:
        alice, bob, sup = login(c, "alice"), login(c, "bob"), login(c, "sup")
        assert c.get("/api/agents/alice/summary", headers=alice).status_code == 409  # no call yet
        service.current["alice"] = {"call_id": "call-1", "status": "connected", "handoff": packet.to_dict()}
        assert c.get("/api/agents/alice/summary", headers=bob).status_code == 403
        store.add_turn("call-1", "caller", RETURN_12034, start,
                       extra={"kind": "bridged"})
        before = c.get("/api/agents/alice/summary", headers=alice).json()["summary"]
        store.add_turn("call-1", "caller", "Actually, just cancel my subscription.", start,
                       extra={"kind": "bridged"})
        after = c.get("/api/agents/alice/summary", headers=alice).json()["summary"]
        proposal = c.get("/api/agents/alice/next-action", headers=alice).json()
        run = {"action": "cancel_subscription", "slots": {}}
        refused = {who: c.post("/api/agents/alice/action", json=run, headers=h).status_code
                   for who, h in (("bob", bob), ("sup", sup))}
        unknown = c.post("/api/agents/alice/action", json={"action": "drop_table"}, headers=alice)
        incomplete = c.post("/api/agents/alice/action", json={"action": "start_return", "slots": {}}, headers=alice)
        service.current["alice"]["status"] = "ringing"
        not_bridged = c.post("/api/agents/alice/action", json=run, headers=alice)
        service.current["alice"] = {"call_id": "call-1", "status": "connected",
                                    "handoff": {**packet.to_dict(), "customer": {"id": 1, "verified": False}}}
        unverified = c.post("/api/agents/alice/action", json=run, headers=alice)
        service.current["alice"] = {"call_id": "call-1", "status": "connected", "handoff": packet.to_dict()}
        done = c.post("/api/agents/alice/action", json=run, headers=alice)
        assert done.status_code == 200, done.text
        wrap = c.get("/api/agents/alice/wrapup", headers=alice).json()["form"]
    turns = (store.get("call-1") or {})["turns"]
    store.close()
    with customers.session() as s:
        subscription = s.scalars(select(Subscription).where(Subscription.customer_id == 1)).one()
        audit = s.scalars(select(AuditLog).where(AuditLog.contact_id == contact_id)).all()
        status = subscription.status
    customers.dispose()

    assert "too small" in before["text"] and "cancel" not in before["text"], before
    assert after["intents"] == ["return_item", "cancel_subscription"] and "cancel my subscription" in after["text"]
    assert proposal["verified"] is True and proposal["next"]["action"] == "cancel_subscription", proposal
    assert proposal["next"]["label"] == "Cancel the subscription"
    assert refused == {"bob": 403, "sup": 403}  # only the agent on the call, not even a supervisor
    assert unknown.status_code == 400 and "cancel_subscription" in unknown.json()["detail"]
    assert incomplete.status_code == 400 and incomplete.json()["detail"] == "start_return needs order_id, return_reason"
    assert not_bridged.status_code == 409 and unverified.status_code == 409
    assert done.json()["outcome"] == "ok" and done.json()["text"].startswith("Cancel the subscription: ok (plan ")
    assert status == "cancelled"
    assert [(a.actor, a.entity, a.action) for a in audit] == [("agent:alice", "subscription", "cancel")]
    assert turns[-1]["speaker"] == "agent" and turns[-1]["extra"]["action"] == "cancel_subscription"
    assert turns[-1]["text"] == done.json()["text"]  # on the call's transcript, live on the agent page
    assert "The agent ran: Cancel the subscription: ok" in wrap["summary"], wrap
