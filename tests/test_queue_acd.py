"""The ACD state machine: strategies, priority, offers, wrap-up, abandon, fallback, statistics.

Time is a hand-moved clock; every test reads the actions the ACD returns."""

from __future__ import annotations

import json

import pytest

from telephony.queue.acd import ACD, AgentSnapshot, QueueError, UnknownAgentError, request_conditions
from telephony.queue.actions import (
    AgentStateChanged,
    Announce,
    CallLeftQueue,
    Connect,
    Fallback,
    RingAgent,
    StopRinging,
    Transfer,
)
from telephony.queue.config import PRIORITY_CONDITIONS, AgentConfig, QueueConfig
from telephony.queue.request import QueueRequest


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def agents(*ids: str, logged_in: bool = True, skills: list[str] | None = None) -> list[AgentConfig]:
    return [
        AgentConfig(id=i, contact=f"sip:{i}@127.0.0.1", logged_in=logged_in, skills=skills or []) for i in ids
    ]


def make(agent_list: list[AgentConfig], **queue: object) -> tuple[ACD, Clock]:
    clock = Clock()
    q = QueueConfig(name="general", **queue)  # type: ignore[arg-type]
    return ACD(agent_list, [q], clock), clock


def of(actions: list, cls: type) -> list:
    return [a for a in actions if isinstance(a, cls)]


def rung(actions: list) -> list[tuple[str, str]]:
    return [(a.call_id, a.agent_id) for a in of(actions, RingAgent)]


def packet(**extra: object) -> QueueRequest:
    fields: dict = {
        "summary": "Caller wants a refund.",
        "reason": "caller_request",
        "queue": "general",
        "priority": 0,
        "caller": "+4930123",
        **extra,
    }
    return QueueRequest(**fields, details={"summary": fields["summary"], "shown": "to agents"})


def test_longest_idle_offers_the_agent_idle_longest() -> None:
    acd, clock = make(agents("a", "b", "c", logged_in=False), agent_timeout=100)
    for t, agent in ((0, "c"), (5, "a"), (10, "b")):
        clock.t = t
        acd.set_agent_state(agent, "available")
    clock.t = 20
    assert rung(acd.enqueue("call1", packet())) == [("call1", "c")]
    assert rung(acd.enqueue("call2", packet())) == [("call2", "a")]
    # c finishes first, but b has now been idle longest (since 10; c only since its call ended).
    acd.agent_answered("call1", "c")
    clock.t = 30
    acd.hangup("call1")
    clock.t = 50
    acd.tick()  # wrap-up of c over
    assert rung(acd.enqueue("call3", packet())) == [("call3", "b")]


def test_round_robin_rings_agents_in_turn() -> None:
    acd, clock = make(agents("a", "b", "c"), strategy="round_robin", wrap_up=0)
    order = []
    for n in range(4):
        actions = acd.enqueue(f"call{n}", packet())
        ((_, agent),) = rung(actions)
        order.append(agent)
        acd.agent_answered(f"call{n}", agent)
        clock.t += 1
        acd.hangup(f"call{n}")
    assert order == ["a", "b", "c", "a"]


def test_ring_all_rings_every_free_agent_and_the_first_answer_wins() -> None:
    acd, _ = make(agents("a", "b", "c"), strategy="ring_all")
    assert sorted(agent for _, agent in rung(acd.enqueue("call1", packet()))) == ["a", "b", "c"]
    out = acd.agent_answered("call1", "b")
    assert of(out, Connect) == [Connect("call1", "b", "general")]
    assert sorted((s.agent_id, s.reason) for s in of(out, StopRinging)) == [
        ("a", "answered_elsewhere"),
        ("c", "answered_elsewhere"),
    ]
    assert acd.agent_state("b") == "busy"
    assert acd.agent_state("a") == "available"


def test_ring_all_adds_an_agent_who_becomes_free_during_the_ring() -> None:
    acd, clock = make(agents("a", "b"), strategy="ring_all", wrap_up=0, agent_timeout=30)
    acd.enqueue("call0", packet())
    acd.agent_answered("call0", "a")
    assert rung(acd.enqueue("call1", packet())) == [("call1", "b")]
    clock.t = 10
    assert rung(acd.hangup("call0")) == [("call1", "a")]
    # a's ring runs its own full timeout
    clock.t = 30
    assert [s.agent_id for s in of(acd.tick(), StopRinging)] == ["b"]
    assert acd.agent_state("a") == "ringing"


def test_frustrated_caller_jumps_ahead_by_priority_rule() -> None:
    acd, clock = make(agents("a"), priority_rules={"frustrated": 5}, wrap_up=0)
    acd.enqueue("busy", packet())
    acd.agent_answered("busy", "a")
    acd.enqueue("calm1", packet())
    clock.t = 1
    acd.enqueue("calm2", packet())
    clock.t = 2
    out = acd.enqueue("angry", packet(frustration="frustrated"))
    assert of(out, Announce)[0].position == 1
    assert [acd.position(c) for c in ("angry", "calm1", "calm2")] == [1, 2, 3]
    clock.t = 3
    assert rung(acd.hangup("busy")) == [("angry", "a")]


def test_no_answer_rings_the_next_agent_and_pauses_the_silent_one() -> None:
    acd, clock = make(agents("a", "b"), agent_timeout=15)
    assert rung(acd.enqueue("call1", packet())) == [("call1", "a")]
    clock.t = 14.9
    assert acd.tick() == []
    clock.t = 15
    out = acd.tick()
    assert of(out, StopRinging) == [StopRinging("call1", "a", "no_answer")]
    assert rung(out) == [("call1", "b")]
    assert AgentStateChanged("a", "paused", "no answer") in out
    assert acd.agent_state("a") == "paused"
    assert acd.position("call1") == 1


def test_autopause_off_keeps_the_agent_available() -> None:
    acd, clock = make(agents("a", "b"), agent_timeout=10, autopause=False)
    acd.enqueue("call1", packet())
    clock.t = 10
    assert rung(acd.tick()) == [("call1", "b")]
    assert acd.agent_state("a") == "available"
    clock.t = 20
    assert rung(acd.tick()) == [("call1", "a")]  # everyone tried: another round


def test_agent_confirm_decline_goes_to_the_next_agent_caller_keeps_place() -> None:
    acd, clock = make(agents("a", "b"), agent_confirm=True)
    first = acd.enqueue("call1", packet())
    assert of(first, RingAgent)[0].confirm is True
    assert of(acd.agent_answered("call1", "a"), Connect) == []  # hears the summary, must accept
    out = acd.agent_key("call1", "a", "2")
    assert of(out, StopRinging) == [StopRinging("call1", "a", "declined")]
    assert rung(out) == [("call1", "b")]
    assert acd.position("call1") == 1
    assert acd.agent_state("a") == "available"  # declining is not a no-answer: no pause
    acd.agent_answered("call1", "b")
    assert of(acd.agent_key("call1", "b", "1"), Connect) == [Connect("call1", "b", "general")]


def test_declining_agent_is_offered_the_same_caller_again_only_after_decline_retry() -> None:
    acd, clock = make(agents("a"), agent_confirm=True, decline_retry=45, agent_timeout=100)
    acd.enqueue("call1", packet())
    clock.t = 5
    assert rung(acd.agent_declined("call1", "a")) == []
    assert rung(acd.enqueue("call2", packet())) == [("call2", "a")]  # another caller is fine
    acd.agent_declined("call2", "a")
    clock.t = 49
    assert rung(acd.tick()) == []
    clock.t = 50
    assert rung(acd.tick()) == [("call1", "a")]


def test_agent_confirm_timeout_after_answer_moves_on() -> None:
    acd, clock = make(agents("a", "b"), agent_confirm=True, agent_timeout=10)
    acd.enqueue("call1", packet())
    clock.t = 8
    acd.agent_answered("call1", "a")  # the accept window restarts at the answer
    clock.t = 17
    assert acd.tick() == []
    clock.t = 18
    out = acd.tick()
    assert of(out, StopRinging) == [StopRinging("call1", "a", "no_answer")]
    assert rung(out) == [("call1", "b")]


def test_wrap_up_holds_the_agent_then_frees_them() -> None:
    acd, clock = make(agents("a"), wrap_up=30)
    acd.enqueue("call1", packet())
    acd.agent_answered("call1", "a")
    clock.t = 100
    out = acd.hangup("call1")
    assert AgentStateChanged("a", "wrap_up") in out
    clock.t = 110
    assert rung(acd.enqueue("call2", packet())) == []
    clock.t = 129
    assert rung(acd.tick()) == []
    clock.t = 131  # a late tick still frees the agent at the end of wrap-up
    out = acd.tick()
    assert rung(out) == [("call2", "a")]
    acd.agent_answered("call2", "a")
    assert acd.queue_stats("general")["average_wait_s"] == pytest.approx((0 + 21) / 2)


def test_agent_ready_ends_wrap_up_early() -> None:
    acd, clock = make(agents("a"), wrap_up=60)
    acd.enqueue("call1", packet())
    acd.agent_answered("call1", "a")
    acd.hangup("call1")
    acd.enqueue("call2", packet())
    assert rung(acd.set_agent_state("a", "available")) == [("call2", "a")]


def test_two_callers_one_agent_second_hears_position_one_and_gets_the_agent_after_wrap_up() -> None:
    acd, clock = make(agents("a"), wrap_up=10, announce_every=30, expected_handle_time=120)
    assert rung(acd.enqueue("first", packet())) == [("first", "a")]
    acd.agent_answered("first", "a")
    clock.t = 5
    out = acd.enqueue("second", packet())
    (ann,) = of(out, Announce)
    assert (ann.call_id, ann.position, ann.first) == ("second", 1, True)
    assert ann.estimated_wait_s == 130  # no history yet: expected handle time + wrap-up
    clock.t = 35
    (again,) = of(acd.tick(), Announce)
    assert (again.position, again.first) == (1, False)
    clock.t = 60
    acd.hangup("first")
    clock.t = 70
    out = acd.tick()
    assert rung(out) == [("second", "a")]
    out = acd.agent_answered("second", "a")
    assert of(out, CallLeftQueue) == [CallLeftQueue("second", "general", "answered", 65.0, "a")]
    # The estimate now comes from the real handle time: 60 s + 10 s wrap-up.
    acd.enqueue("third", packet())
    assert of(acd.enqueue("fourth", packet()), Announce)[0].estimated_wait_s == 140


def test_announcements_pause_while_an_agent_rings() -> None:
    acd, clock = make(agents("a"), announce_every=10, agent_timeout=25, autopause=False)
    assert of(acd.enqueue("call1", packet()), Announce) == []  # offered at once: nothing to announce
    clock.t = 24
    assert acd.tick() == []


def test_max_wait_fallback() -> None:
    acd, clock = make(agents("a", logged_in=False), max_wait=120, fallback="voicemail", announce_every=0)
    acd.enqueue("call1", packet())
    clock.t = 119
    assert acd.tick() == []
    clock.t = 120
    out = acd.tick()
    assert of(out, Fallback) == [Fallback("call1", "general", "voicemail", "max_wait", "+4930123", {})]
    assert of(out, CallLeftQueue) == [CallLeftQueue("call1", "general", "timeout", 120.0)]
    assert acd.queue_stats("general")["timed_out"] == 1
    assert acd.next_deadline() is None


def test_max_wait_during_a_ring_waits_for_the_ring_then_falls_back() -> None:
    acd, clock = make(agents("a"), max_wait=30, agent_timeout=20)
    acd.enqueue("call0", packet())
    acd.agent_answered("call0", "a")
    clock.t = 25
    acd.enqueue("late", packet())
    clock.t = 28
    acd.hangup("call0")  # wrap-up 10 s
    clock.t = 38
    assert rung(acd.tick()) == [("late", "a")]
    clock.t = 58
    out = acd.tick()
    assert of(out, Fallback)[0].reason == "max_wait"
    assert rung(out) == []


def test_caller_hanging_up_while_queued_is_abandoned_with_wait_time() -> None:
    acd, clock = make(agents("a", logged_in=False))
    acd.enqueue("call1", packet())
    clock.t = 42.5
    out = acd.hangup("call1")
    assert out == [CallLeftQueue("call1", "general", "abandoned", 42.5)]
    stats = acd.queue_stats("general")
    assert (stats["abandoned"], stats["average_abandon_wait_s"], stats["waiting"]) == (1, 42.5, 0)
    assert acd.hangup("call1") == []


def test_caller_hanging_up_while_ringing_stops_the_ring() -> None:
    acd, clock = make(agents("a"))
    acd.enqueue("call1", packet())
    out = acd.hangup("call1")
    assert of(out, StopRinging) == [StopRinging("call1", "a", "caller_left")]
    assert acd.agent_state("a") == "available"
    assert acd.agent_answered("call1", "a") == []  # a late answer changes nothing


def test_callback_key_leaves_the_queue_with_a_callback_request() -> None:
    acd, clock = make(agents("a", logged_in=False), callback_key="*")
    acd.enqueue("call1", packet())
    clock.t = 7
    assert acd.caller_key("call1", "1") == []
    out = acd.caller_key("call1", "*")
    (fb,) = of(out, Fallback)
    assert (fb.kind, fb.reason, fb.caller, fb.request.summary) == (
        "callback",
        "caller_request",
        "+4930123",
        "Caller wants a refund.",
    )
    assert fb.request.details == {"summary": "Caller wants a refund.", "shown": "to agents"}  # passed through
    assert of(out, CallLeftQueue)[0].wait_s == 7
    assert acd.queue_stats("general")["callbacks"] == 1


def test_pausing_or_logging_out_withdraws_a_ringing_offer() -> None:
    acd, clock = make(agents("a", "b"))
    acd.enqueue("call1", packet())
    out = acd.set_agent_state("a", "paused", "lunch")
    assert of(out, StopRinging) == [StopRinging("call1", "a", "agent_left")]
    assert rung(out) == [("call1", "b")]
    assert AgentStateChanged("a", "paused", "lunch") in out
    assert acd.agents_snapshot()[0]["pause_reason"] == "lunch"
    out = acd.set_agent_state("b", "offline")
    assert of(out, StopRinging) == [StopRinging("call1", "b", "agent_left")]
    assert acd.agent_state("b") == "offline"


def test_unreachable_agent_is_paused_and_the_next_is_rung() -> None:
    acd, _ = make(agents("a", "b"))
    acd.enqueue("call1", packet())
    out = acd.agent_unreachable("call1", "a", "SIP 480")
    assert rung(out) == [("call1", "b")]
    assert acd.agents_snapshot()[0]["pause_reason"] == "SIP 480"


def test_set_agent_state_rejects_unknown_agents_and_states() -> None:
    acd, _ = make(agents("a"))
    with pytest.raises(UnknownAgentError, match="no agent"):
        acd.set_agent_state("zed", "available")
    with pytest.raises(QueueError, match="state must be"):
        acd.set_agent_state("a", "busy")


def test_skills_route_calls_to_qualified_agents_and_unknown_queue_goes_to_the_first() -> None:
    clock = Clock()
    acd = ACD(
        agents("gen") + agents("techie", skills=["tech"]),
        [QueueConfig(name="general"), QueueConfig(name="tech", skills=["tech"])],
        clock,
    )
    acd.set_agent_state("gen", "paused")
    assert rung(acd.enqueue("t1", packet(queue="tech"))) == [("t1", "techie")]
    out = acd.enqueue("g1", packet(queue="no-such-queue"))
    assert rung(out) == []
    assert acd.snapshot()["queues"][0]["waiting"][0]["call_id"] == "g1"


def test_blind_transfer_queue_and_join_empty() -> None:
    clock = Clock()
    acd = ACD(
        agents("a", logged_in=False),
        [
            QueueConfig(name="general", join_empty=False, fallback="none"),
            QueueConfig(name="sales", blind_transfer_to="sip:sales@pbx.example.com"),
        ],
        clock,
    )
    assert of(acd.enqueue("s", packet(queue="sales")), Transfer) == [
        Transfer("s", "sales", "sip:sales@pbx.example.com")
    ]
    out = acd.enqueue("g", packet())
    assert [(f.kind, f.reason) for f in of(out, Fallback)] == [("none", "no_agents")]


def test_statistics_service_level_and_handle_time() -> None:
    acd, clock = make(agents("a"), service_level_s=20, wrap_up=0, agent_timeout=60)
    acd.enqueue("fast", packet())
    clock.t = 5
    acd.agent_answered("fast", "a")  # waited 5 s: within the service level
    acd.enqueue("slow", packet())
    acd.enqueue("gone", packet())
    clock.t = 65
    acd.hangup("fast")  # 60 s handle time
    clock.t = 95
    acd.agent_answered("slow", "a")  # waited 90 s
    clock.t = 100
    snap = acd.snapshot()["queues"][0]
    assert snap["waiting"][0]["call_id"] == "gone"
    stats = snap["stats"]
    assert stats["longest_wait_s"] == 95
    acd.hangup("gone")
    clock.t = 125
    acd.hangup("slow")
    stats = acd.queue_stats("general")
    assert stats["answered"] == 2
    assert stats["abandoned"] == 1
    assert stats["service_level"] == pytest.approx(1 / 3, abs=1e-3)
    assert stats["average_handle_time_s"] == pytest.approx((60 + 30) / 2)
    assert stats["average_wait_s"] == pytest.approx((5 + 90) / 2)


def test_snapshots_are_json_and_show_states() -> None:
    acd, clock = make(agents("a", "b"))
    acd.set_agent_state("b", "paused", "training")
    acd.enqueue("call1", packet())
    acd.enqueue("call2", packet(frustration="annoyed"))
    data = json.loads(json.dumps(acd.snapshot()))
    q = data["queues"][0]
    assert [(w["call_id"], w["state"], w["position"]) for w in q["waiting"]] == [
        ("call1", "ringing", 1),
        ("call2", "waiting", 2),
    ]
    assert {a["id"]: a["state"] for a in q["agents"]} == {"a": "ringing", "b": "paused"}
    assert (acd.waiting_in("call2"), acd.waiting_in("nobody")) == ("general", None)
    assert [(w["summary"], w["reason"], w["frustration"]) for w in q["waiting"]] == [
        ("Caller wants a refund.", "caller_request", None),
        ("Caller wants a refund.", "caller_request", "annoyed"),
    ]
    agents_json = json.loads(json.dumps(acd.agents_snapshot()))
    assert agents_json[0]["offered_call"] == "call1"
    assert agents_json == [a.to_dict() for a in acd.agents()]
    first = acd.agents()[0]
    assert isinstance(first, AgentSnapshot) and first.call_ids() == {"call1"}
    acd.agent_answered("call1", "a")
    assert acd.agents()[0].call_ids() == {"call1"} and acd.agents()[0].calls == ("call1",)


def test_priority_conditions_cover_every_handoff_reason() -> None:
    from dialogs.manager.handoff import REASONS

    assert set(REASONS) <= set(PRIORITY_CONDITIONS)
    assert request_conditions(QueueRequest(reason="human_only", verified=True, frustration="annoyed")) == {
        "human_only",
        "verified",
        "annoyed",
    }
    assert request_conditions(QueueRequest()) == {"unverified"}


def test_agent_lost_puts_the_caller_back_at_the_front_and_pauses_the_agent() -> None:
    acd, clock = make(agents("a", "b"), agent_timeout=100, wrap_up=0)
    assert rung(acd.enqueue("call1", packet())) == [("call1", "a")]
    assert of(acd.agent_answered("call1", "a"), Connect)
    clock.t = 10
    # b is busy with another call and a higher-priority caller waits when call1 comes back from a's dropped leg.
    assert rung(acd.enqueue("call2", packet())) == [("call2", "b")]
    assert of(acd.agent_answered("call2", "b"), Connect)
    acd.enqueue("call3", packet(priority=5))
    clock.t = 20
    out = acd.agent_lost("call1")
    assert AgentStateChanged("a", "paused", "connection lost") in out
    assert not of(out, Fallback)
    assert acd.position("call1") == 1 and acd.position("call3") == 2  # before a higher priority caller
    assert acd.queue_stats("general")["agent_lost"] == 1
    clock.t = 30
    out = acd.hangup("call2")  # b is free again: the returned caller is offered first
    assert rung(out) == [("call1", "b")]
    assert acd.agent_lost("nope") == []


def test_agent_lost_with_nobody_else_offers_a_callback() -> None:
    acd, clock = make(agents("a"), agent_timeout=100, wrap_up=0, fallback="none")
    acd.enqueue("call1", packet())
    out = acd.agent_answered("call1", "a")
    assert of(out, Connect)
    clock.t = 15
    out = acd.agent_lost("call1")
    assert [(f.kind, f.reason) for f in of(out, Fallback)] == [("callback", "agent_lost")]
    assert of(out, CallLeftQueue)[0].outcome == "callback"
    assert acd.waiting_in("call1") is None
    stats = acd.queue_stats("general")
    assert stats["agent_lost"] == 1 and stats["callbacks"] == 1 and stats["connected_now"] == 0
    assert acd.agent_state("a") == "paused"


def test_recheck_offers_an_agent_another_node_freed_before_the_timed_retry() -> None:
    acd, clock = make(agents("alice"))
    assert rung(acd.enqueue("c1", packet())) == [("c1", "alice")]
    acd.agent_elsewhere("c1", "alice", retry_s=2.0)  # another node holds her: busy here for 2 s
    assert acd.agent_state("alice") == "busy"
    clock.t = 0.1
    assert rung(acd.recheck("alice")) == [("c1", "alice")]  # that node said it gave her back: offered now
    assert acd.agent_state("alice") == "ringing"
    assert acd.recheck() == []  # nothing changed for anyone else
