"""The ACD: which waiting caller goes to which agent, as a deterministic state machine.

Every input is a method call (a caller joins, an agent answers, a key is pressed, the time passes) and every
output is a list of :mod:`telephony.queue.actions` for a driver to carry out. Time comes from an injected
``clock`` (seconds, any origin): the ACD never sleeps and never reads the wall clock. A driver calls
:meth:`ACD.tick` at :meth:`ACD.next_deadline` (see :mod:`telephony.queue.runner`).

Order of service: higher priority first, then first come first served, across all queues an agent serves. The
waiting callers and statistics live in a :class:`~telephony.queue.entries.QueueEntries` store; when it is shared by
a cluster's nodes, an agent free here is left for an earlier caller on another node, whose ACD rings them.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from telephony.queue.actions import (
    Action,
    AgentStateChanged,
    Announce,
    CallLeftQueue,
    Connect,
    Fallback,
    RingAgent,
    StopRinging,
    Transfer,
)
from telephony.queue.config import AgentConfig, QueueConfig, serves
from telephony.queue.entries import LocalQueueEntries, QueueEntries, QueueEntry
from telephony.queue.request import QueueRequest

log = logging.getLogger(__name__)

# Handle times kept per queue for the wait estimate.
RECENT_HANDLE_TIMES = 20
# States a person (agent page, API) may set; the others follow from calls.
SETTABLE_STATES = ("available", "paused", "offline")
# An agent left free for an earlier caller on another node (whose node rings them): looked at again after this
# (a safety net: a cluster's nodes tell each other of freed agents and callers gone at once, see ACD.recheck).
FOREIGN_RECHECK_S = 2.0


class QueueError(ValueError):
    """A request the ACD cannot carry out because of its input (unknown agent, state not settable)."""


class UnknownAgentError(QueueError):
    """No agent with that id (an API answers 404)."""


@dataclass
class _Offer:
    agent_id: str
    deadline: float
    answered: bool = False  # answered and hearing the summary, not yet accepted (agent_confirm)


@dataclass
class _Call:
    call_id: str
    queue: str
    caller: str | None
    request: QueueRequest
    priority: int
    enqueued_at: float
    seq: int
    deadline: float
    next_announce: float | None
    announced: bool = False
    offers: dict[str, _Offer] = field(default_factory=dict)
    declined: dict[str, float] = field(default_factory=dict)  # agent -> when they may be offered it again
    tried: set[str] = field(default_factory=set)  # rung without an answer this round
    returned: bool = False  # back from an agent whose leg dropped: served before everyone else

    def order(self) -> tuple[bool, int, float, int]:
        return (not self.returned, -self.priority, self.enqueued_at, self.seq)


@dataclass
class _Connected:
    call_id: str
    queue: str
    agent_id: str
    connected_at: float
    call: _Call  # as it waited, for putting it back if the agent's leg drops


@dataclass
class _Agent:
    cfg: AgentConfig
    index: int
    logged_in: bool
    idle_since: float
    pause_reason: str | None = None
    offer: str | None = None  # the call this agent is being offered
    calls: set[str] = field(default_factory=set)
    wrap_up_until: float | None = None
    elsewhere_until: float | None = None  # ringing or talking on another node (a refused claim): busy here
    answered: int = 0
    state_since: float = 0.0

    @property
    def state(self) -> str:
        if self.offer is not None:
            return "ringing"
        if self.calls or self.elsewhere_until is not None:
            return "busy"
        if not self.logged_in:
            return "offline"
        if self.wrap_up_until is not None:
            return "wrap_up"
        if self.pause_reason is not None:
            return "paused"
        return "available"


def request_conditions(request: QueueRequest) -> set[str]:
    """The ``priority_rules`` conditions a queue request meets: its reason, its frustration level,
    ``verified`` or ``unverified``."""
    out = {"verified" if request.verified else "unverified"}
    if request.reason:
        out.add(request.reason)
    if request.frustration:
        out.add(request.frustration)
    return out


@dataclass(frozen=True)
class AgentSnapshot:
    """One agent as the ACD sees them now: state (see :meth:`ACD.agent_state`), the calls they are on and
    the call they are being offered, and the queues they serve."""

    id: str
    name: str
    contact: str
    skills: tuple[str, ...]
    max_calls: int
    state: str
    pause_reason: str | None
    in_state_s: float
    calls: tuple[str, ...]
    offered_call: str | None
    answered: int
    queues: tuple[str, ...]

    def call_ids(self) -> set[str]:
        """The calls this agent is on or being offered."""
        return {*self.calls, *([self.offered_call] if self.offered_call else [])}

    def to_dict(self) -> dict[str, Any]:
        """The agent as JSON (GET /api/agents, the events websocket)."""
        return {
            "id": self.id,
            "name": self.name,
            "contact": self.contact,
            "skills": list(self.skills),
            "max_calls": self.max_calls,
            "state": self.state,
            "pause_reason": self.pause_reason,
            "in_state_s": self.in_state_s,
            "calls": list(self.calls),
            "offered_call": self.offered_call,
            "answered": self.answered,
            "queues": list(self.queues),
        }


class ACD:
    """Automatic call distribution over configured agents and queues. All methods return the actions to
    carry out, in order. ``clock`` gives the current time in seconds. ``entries`` holds the waiting callers and
    the statistics (default: in this process; in a cluster, shared with the other nodes' ACDs)."""

    def __init__(
        self, agents: Iterable[AgentConfig], queues: Iterable[QueueConfig], clock: Callable[[], float],
        entries: QueueEntries | None = None,
    ):
        self.clock = clock
        self._now = clock()
        self.entries: QueueEntries = entries if entries is not None else LocalQueueEntries(clock)
        self._recheck_at: float | None = None  # see FOREIGN_RECHECK_S
        self.queues: dict[str, QueueConfig] = {}
        for q in queues:
            self.queues.setdefault(q.name, q)
        if not self.queues:
            # No queues configured: one queue every agent serves, named as the domain's default.
            self.queues["general"] = QueueConfig(name="general")
        self.default_queue = next(iter(self.queues))
        self._agents: dict[str, _Agent] = {}
        for i, a in enumerate(agents):
            if a.id in self._agents:
                raise QueueError(f"duplicate agent id {a.id!r}")
            self._agents[a.id] = _Agent(a, i, a.logged_in, idle_since=self._now, state_since=self._now)
        self._calls: dict[str, _Call] = {}
        self._connected: dict[str, _Connected] = {}
        self._recent_handle = {name: deque[float](maxlen=RECENT_HANDLE_TIMES) for name in self.queues}
        self._rr_last: dict[str, int] = {}
        self._seq = 0
        self._reported = {aid: (a.state, a.pause_reason) for aid, a in self._agents.items()}

    # --- inputs: callers ----------------------------------------------------------------------------------
    def enqueue(self, call_id: str, request: QueueRequest) -> list[Action]:
        """A caller joins the queue ``request`` names (None or an unknown name: the first configured queue)
        with the request's priority plus the queue's ``priority_rules``."""
        self._now = self.clock()
        if call_id in self._calls or call_id in self._connected:
            raise QueueError(f"call {call_id} is already queued or connected")
        name = request.queue
        if name is None or name not in self.queues:
            if name is not None:
                log.warning(
                    "queue %r is not configured; call %s goes to %r", name, call_id, self.default_queue
                )
            name = self.default_queue
        q = self.queues[name]
        caller = request.caller
        out: list[Action] = []
        if q.blind_transfer_to:
            self.entries.count(name, {"transferred": 1})
            out += [
                Transfer(call_id, name, q.blind_transfer_to),
                CallLeftQueue(call_id, name, "transferred", 0.0),
            ]
            return out
        if not q.join_empty and not any(a.logged_in and serves(a.cfg, q) for a in self._agents.values()):
            out += [
                Fallback(call_id, name, q.fallback, "no_agents", caller, request),
                CallLeftQueue(call_id, name, "no_agents", 0.0),
            ]
            return out
        self._seq += 1
        call = self._calls[call_id] = _Call(
            call_id,
            name,
            caller,
            request,
            self._priority(q, request),
            self._now,
            self._seq,
            deadline=self._now + q.max_wait,
            next_announce=self._now,
        )
        self.entries.join(call_id, name, caller, call.priority, returned=False)
        self._settle(out)
        return out

    def hangup(self, call_id: str) -> list[Action]:
        """The caller (or, once connected, either side) hung up. A queued caller counts as abandoned with
        their wait; a connected call ends, its handle time is recorded and the agent goes to wrap-up."""
        self._now = self.clock()
        out: list[Action] = []
        call = self._calls.get(call_id)
        if call is not None:
            self._withdraw_offers(call, "caller_left", out)
            wait = self._leave(call)
            self.entries.count(call.queue, {"abandoned": 1, "abandon_wait_total": wait})
            out.append(CallLeftQueue(call_id, call.queue, "abandoned", wait))
        elif call_id in self._connected:
            conn = self._connected.pop(call_id)
            self.entries.connected(call_id, conn.queue, False)
            handle = self._now - conn.connected_at
            self.entries.count(conn.queue, {"handled": 1, "handle_total": handle})
            self._recent_handle[conn.queue].append(handle)
            agent = self._agents[conn.agent_id]
            agent.calls.discard(call_id)
            if not agent.calls:
                wrap = self.queues[conn.queue].wrap_up
                if agent.logged_in and wrap > 0:
                    agent.wrap_up_until = self._now + wrap
                else:
                    agent.idle_since = self._now
        else:
            return []
        self._settle(out)
        return out

    def agent_lost(self, call_id: str) -> list[Action]:
        """The agent's side of a connected call dropped (a hang-up, or their phone fell silent) while the caller
        stayed. The agent is paused ("connection lost"); the caller goes back to the front of the queue, or
        gets a callback when no other agent is logged in and unpaused to serve it."""
        self._now = self.clock()
        conn = self._connected.pop(call_id, None)
        if conn is None:
            return []
        self.entries.connected(call_id, conn.queue, False)
        q = self.queues[conn.queue]
        self.entries.count(q.name, {"agent_lost": 1})
        agent = self._agents[conn.agent_id]
        agent.calls.discard(call_id)
        if agent.logged_in:
            agent.pause_reason = "connection lost"  # their phone may be gone: no new call until they say so
        call = conn.call
        out: list[Action] = []
        if not any(a.logged_in and a.pause_reason is None and serves(a.cfg, q) for a in self._agents.values()):
            self.entries.count(q.name, {"callbacks": 1})
            out += [
                Fallback(call_id, q.name, "callback", "agent_lost", call.caller, call.request),
                CallLeftQueue(call_id, q.name, "callback", 0.0),
            ]
        else:
            call.offers.clear()
            call.declined.clear()
            call.tried = {conn.agent_id}
            call.returned = True
            call.enqueued_at = self._now
            call.deadline = self._now + q.max_wait
            call.next_announce = self._now + q.announce_every if q.announce_every > 0 else None
            self._calls[call_id] = call
            self.entries.join(call_id, q.name, call.caller, call.priority, returned=True)
        self._settle(out)
        return out

    def caller_key(self, call_id: str, key: str) -> list[Action]:
        """A key pressed by a queued caller: the queue's callback key leaves the queue with a callback
        request. Other keys are ignored."""
        self._now = self.clock()
        call = self._calls.get(call_id)
        if call is None:
            return []
        q = self.queues[call.queue]
        if q.callback_key is None or key != q.callback_key:
            return []
        out: list[Action] = []
        self._withdraw_offers(call, "caller_left", out)
        wait = self._leave(call)
        self.entries.count(call.queue, {"callbacks": 1})
        out += [
            Fallback(call_id, call.queue, "callback", "caller_request", call.caller, call.request),
            CallLeftQueue(call_id, call.queue, "callback", wait),
        ]
        self._settle(out)
        return out

    # --- inputs: agents -----------------------------------------------------------------------------------
    def agent_answered(self, call_id: str, agent_id: str) -> list[Action]:
        """The offered agent picked up. Without ``agent_confirm`` the call is connected; with it the agent
        hears the summary and must accept (:meth:`agent_key` 1 / :meth:`agent_accepted`) within the timeout."""
        self._now = self.clock()
        call, offer = self._offer_of(call_id, agent_id)
        if call is None or offer is None:
            return []
        out: list[Action] = []
        q = self.queues[call.queue]
        if not q.agent_confirm:
            self._connect(call, agent_id, out)
        elif not offer.answered:
            offer.answered = True
            offer.deadline = self._now + q.agent_timeout
            for other in [a for a in call.offers if a != agent_id]:
                self._drop_offer(call, other, "answered_elsewhere", out)
        self._settle(out)
        return out

    def agent_accepted(self, call_id: str, agent_id: str) -> list[Action]:
        """The agent accepted the offered call (key 1 or the page's button): connect."""
        self._now = self.clock()
        call, offer = self._offer_of(call_id, agent_id)
        if call is None or offer is None:
            return []
        out: list[Action] = []
        self._connect(call, agent_id, out)
        self._settle(out)
        return out

    def agent_declined(self, call_id: str, agent_id: str) -> list[Action]:
        """The agent declined (key 2, the page's button, or rejected the ring): the next agent is tried and
        this agent is not offered this caller again for the queue's ``decline_retry`` seconds. The caller
        keeps their place."""
        self._now = self.clock()
        call, offer = self._offer_of(call_id, agent_id)
        if call is None or offer is None:
            return []
        out: list[Action] = []
        call.declined[agent_id] = self._now + self.queues[call.queue].decline_retry
        self._drop_offer(call, agent_id, "declined", out)
        self._settle(out)
        return out

    def agent_key(self, call_id: str, agent_id: str, key: str) -> list[Action]:
        """A key pressed by an agent during an offer: 1 accepts, 2 declines, others are ignored."""
        if key == "1":
            return self.agent_accepted(call_id, agent_id)
        if key == "2":
            return self.agent_declined(call_id, agent_id)
        return []

    def agent_unreachable(self, call_id: str, agent_id: str, reason: str = "unreachable") -> list[Action]:
        """The agent could not be rung (busy, not registered, network): the next agent is tried and this one
        is paused with ``reason`` (if the queue autopauses)."""
        self._now = self.clock()
        call, offer = self._offer_of(call_id, agent_id)
        if call is None or offer is None:
            return []
        out: list[Action] = []
        self._drop_offer(call, agent_id, "unreachable", out)
        if self.queues[call.queue].autopause:
            self._agents[agent_id].pause_reason = reason
        self._settle(out)
        return out

    def agent_elsewhere(self, call_id: str, agent_id: str, retry_s: float) -> list[Action]:
        """The agent could not be claimed (another node rings or connects them): the offer is taken back without
        ringing, the agent counts as busy here for ``retry_s`` and the next agent is tried."""
        self._now = self.clock()
        call, offer = self._offer_of(call_id, agent_id)
        if call is None or offer is None:
            return []
        call.offers.pop(agent_id, None)
        if not call.offers:
            self.entries.ringing(call_id, False)
        agent = self._agents[agent_id]
        agent.offer = None
        agent.elsewhere_until = self._now + retry_s
        out: list[Action] = []
        self._settle(out)
        return out

    def recheck(self, agent_id: str | None = None) -> list[Action]:
        """Another node freed ``agent_id`` (its claim given back) or a caller left the shared queue there: offer
        again now instead of at the next timed retry (``agent_elsewhere``'s ``retry_s``, :data:`FOREIGN_RECHECK_S`)."""
        self._now = self.clock()
        agent = self._agents.get(agent_id) if agent_id is not None else None
        if agent is not None:
            agent.elsewhere_until = None
        self._recheck_at = None
        out: list[Action] = []
        self._settle(out)
        return out

    def set_agent_state(self, agent_id: str, state: str, reason: str | None = None) -> list[Action]:
        """Log in (``available``, which also ends a wrap-up early), ``paused`` with a reason, or ``offline``.
        A call the agent is on continues; an offer ringing them is withdrawn when they pause or log out.
        Raises :class:`QueueError` for an unknown agent or a state only calls can set."""
        self._now = self.clock()
        agent = self._agents.get(agent_id)
        if agent is None:
            raise UnknownAgentError(f"no agent with id {agent_id!r}")
        if state not in SETTABLE_STATES:
            raise QueueError(f"state must be one of {', '.join(SETTABLE_STATES)}, not {state!r}")
        out: list[Action] = []
        if state == "available":
            if not agent.logged_in or agent.wrap_up_until is not None:
                agent.idle_since = self._now
            agent.logged_in, agent.pause_reason, agent.wrap_up_until = True, None, None
        else:
            if agent.offer is not None:
                self._drop_offer(self._calls[agent.offer], agent_id, "agent_left", out)
            if state == "paused":
                agent.logged_in, agent.pause_reason = True, (reason or "paused")
            else:
                agent.logged_in, agent.pause_reason, agent.wrap_up_until = False, None, None
        self._settle(out)
        return out

    # --- inputs: time -------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do next (clock seconds), or None."""
        times: list[float] = [] if self._recheck_at is None else [self._recheck_at]
        for a in self._agents.values():
            if a.wrap_up_until is not None:
                times.append(a.wrap_up_until)
            if a.elsewhere_until is not None:
                times.append(a.elsewhere_until)
        for c in self._calls.values():
            times += c.declined.values()
            if c.offers:
                times += [o.deadline for o in c.offers.values()]
            else:
                times.append(c.deadline)
                if c.next_announce is not None:
                    times.append(c.next_announce)
        return min(times, default=None)

    def tick(self) -> list[Action]:
        """Fire every timer due by now, each at its own time: agents' no-answer timeouts, wrap-up ends,
        callers' maximum wait and announcements."""
        now = self.clock()
        out: list[Action] = []
        while (due := self.next_deadline()) is not None and due <= now:
            self._now = due
            for call in sorted(self._calls.values(), key=_Call.order):
                for agent_id, offer in list(call.offers.items()):
                    if offer.deadline <= due:
                        self._drop_offer(call, agent_id, "no_answer", out)
                        if self.queues[call.queue].autopause:
                            self._agents[agent_id].pause_reason = "no answer"
            for call in self._calls.values():
                call.declined = {a: t for a, t in call.declined.items() if t > due}
            if self._recheck_at is not None and self._recheck_at <= due:
                self._recheck_at = None
            for a in self._agents.values():
                if a.wrap_up_until is not None and a.wrap_up_until <= due:
                    a.wrap_up_until = None
                    a.idle_since = due
                if a.elsewhere_until is not None and a.elsewhere_until <= due:
                    a.elsewhere_until = None
            self._settle(out)
        self._now = now
        return out

    # --- outputs for the API -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Every queue with its waiting callers (in order of service), its agents with their state, and its
        statistics. JSON-able; the body of GET /api/queues."""
        self._now = self.clock()
        queues = []
        order = self.entries.waiting()
        rank = {e.call_id: i for i, e in enumerate(order)}
        node = self.entries.node_id or None
        for name, q in self.queues.items():
            waiting: list[dict[str, Any]] = []
            mine: list[_Call | QueueEntry] = list(self._ordered(name))
            foreign = [e for e in order if e.queue == name and e.node != self.entries.node_id]
            if foreign:  # another node's callers between this node's, in the shared order of service
                mine = sorted([*mine, *foreign], key=lambda c: rank.get(c.call_id, len(order)))
            for pos, c in enumerate(mine, start=1):
                if isinstance(c, QueueEntry):
                    waiting.append(
                        {"call_id": c.call_id, "caller": c.caller, "position": pos, "priority": c.priority,
                         "waited_s": c.waited_s, "state": "ringing" if c.ringing else "waiting", "ringing": [],
                         "summary": None, "reason": None, "frustration": None,
                         "estimated_wait_s": self._estimate(q, pos), "node": c.node}
                    )
                    continue
                waiting.append(
                    {
                        "call_id": c.call_id,
                        "caller": c.caller,
                        "position": pos,
                        "priority": c.priority,
                        "waited_s": round(self._now - c.enqueued_at, 3),
                        "state": "ringing" if c.offers else "waiting",
                        "ringing": sorted(c.offers),
                        "summary": c.request.summary,
                        "reason": c.request.reason,
                        "frustration": c.request.frustration,
                        "estimated_wait_s": self._estimate(q, pos),
                        "node": node,
                    }
                )
            agents = [
                {"id": a.cfg.id, "name": a.cfg.display_name, "state": a.state, "pause_reason": a.pause_reason}
                for a in self._agents.values()
                if serves(a.cfg, q)
            ]
            queues.append(
                {
                    "name": name,
                    "strategy": q.strategy,
                    "skills": list(q.skills),
                    "blind_transfer_to": q.blind_transfer_to,
                    "waiting": waiting,
                    "agents": agents,
                    "stats": self.queue_stats(name),
                }
            )
        return {"queues": queues}

    def agents(self) -> list[AgentSnapshot]:
        """Every agent with state, pause reason, current calls and the queues they serve."""
        self._now = self.clock()
        return [
            AgentSnapshot(
                id=a.cfg.id,
                name=a.cfg.display_name,
                contact=a.cfg.contact,
                skills=tuple(a.cfg.skills),
                max_calls=a.cfg.max_calls,
                state=a.state,
                pause_reason=a.pause_reason,
                in_state_s=round(self._now - a.state_since, 3),
                calls=tuple(sorted(a.calls)),
                offered_call=a.offer,
                answered=a.answered,
                queues=tuple(name for name, q in self.queues.items() if serves(a.cfg, q)),
            )
            for a in self._agents.values()
        ]

    def agents_snapshot(self) -> list[dict[str, Any]]:
        """:meth:`agents` as JSON (the body of GET /api/agents)."""
        return [a.to_dict() for a in self.agents()]

    def agent_state(self, agent_id: str) -> str:
        """One agent's state: offline, available, ringing, busy, wrap_up or paused."""
        agent = self._agents.get(agent_id)
        if agent is None:
            raise UnknownAgentError(f"no agent with id {agent_id!r}")
        return agent.state

    def queue_stats(self, name: str) -> dict[str, Any]:
        """Statistics of one queue since start: waiting now, longest current wait, answered, abandoned,
        timed out, callbacks, service level (answered within ``service_level_s`` / answered + abandoned +
        timed out; None before any such call), average wait of answered calls and average handle time."""
        if name not in self.queues:
            raise QueueError(f"no queue named {name!r}")
        st = self.entries.counters(name)
        answered, abandoned, handled = int(st["answered"]), int(st["abandoned"]), int(st["handled"])
        waits = [self._now - c.enqueued_at for c in self._calls.values() if c.queue == name]
        waits += [e.waited_s for e in self._foreign() if e.queue == name]
        finished = answered + abandoned + int(st["timeouts"])
        return {
            "waiting": len(waits),
            "longest_wait_s": round(max(waits, default=0.0), 3),
            "answered": answered,
            "abandoned": abandoned,
            "timed_out": int(st["timeouts"]),
            "callbacks": int(st["callbacks"]),
            "transferred": int(st["transferred"]),
            "agent_lost": int(st["agent_lost"]),
            "node_lost": int(st["node_lost"]),
            "connected_now": self.entries.connected_now(name),  # every node's
            "service_level_s": self.queues[name].service_level_s,
            "service_level": round(st["answered_within"] / finished, 4) if finished else None,
            "average_wait_s": round(st["wait_total"] / answered, 3) if answered else None,
            "average_abandon_wait_s": round(st["abandon_wait_total"] / abandoned, 3) if abandoned else None,
            "average_handle_time_s": round(st["handle_total"] / handled, 3) if handled else None,
        }

    def waiting_in(self, call_id: str) -> str | None:
        """The queue a caller waits in, or None if not waiting (connected, gone, or never queued)."""
        call = self._calls.get(call_id)
        return call.queue if call is not None else None

    def position(self, call_id: str) -> int | None:
        """A queued caller's position (1 = next), or None if not queued."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        return [c.call_id for c in self._ordered(call.queue)].index(call_id) + 1

    # --- internals ----------------------------------------------------------------------------------------
    def _priority(self, q: QueueConfig, request: QueueRequest) -> int:
        met = request_conditions(request)
        return request.priority + sum(bonus for cond, bonus in q.priority_rules.items() if cond in met)

    def _ordered(self, queue: str) -> list[_Call]:
        return sorted((c for c in self._calls.values() if c.queue == queue), key=_Call.order)

    def _free(self, a: _Agent, q: QueueConfig, call: _Call) -> bool:
        return (
            a.logged_in
            and a.pause_reason is None
            and a.offer is None
            and a.wrap_up_until is None
            and a.elsewhere_until is None
            and len(a.calls) < a.cfg.max_calls
            and call.declined.get(a.cfg.id, self._now) <= self._now
            and serves(a.cfg, q)
        )

    def _choose(self, q: QueueConfig, free: list[_Agent]) -> list[_Agent]:
        if q.strategy == "ring_all":
            return free
        if q.strategy == "round_robin":
            last = self._rr_last.get(q.name, -1)
            after = [a for a in free if a.index > last]
            pick = min(after or free, key=lambda a: a.index)
            self._rr_last[q.name] = pick.index
            return [pick]
        return [min(free, key=lambda a: (a.idle_since, a.index))]

    def _foreign(self) -> list[QueueEntry]:
        """Other nodes' waiting callers (none on a single node)."""
        return [e for e in self.entries.waiting() if e.node != self.entries.node_id]

    def _owed(self) -> Callable[[_Agent, _Call], bool]:
        """Whether an agent is left for an earlier caller waiting on another node, who is not being rung (that
        node rings the agent: it carries the caller's audio)."""
        order = self.entries.waiting() if self._calls else []
        ranks = {e.call_id: i for i, e in enumerate(order)}
        earlier = [(i, e) for i, e in enumerate(order)
                   if e.node != self.entries.node_id and not e.ringing and e.queue in self.queues]
        if not earlier:
            return lambda agent, call: False

        def owed(agent: _Agent, call: _Call) -> bool:
            mine = ranks.get(call.call_id)
            if mine is None:  # the shared store does not have this caller (unreachable): serve them here
                return False
            return any(i < mine and serves(agent.cfg, self.queues[e.queue]) for i, e in earlier)

        return owed

    def _dispatch(self, out: list[Action]) -> None:
        ordered = sorted(self._calls.values(), key=_Call.order)
        owed = self._owed()
        for call in ordered:
            # A caller past their maximum wait (an offer ran over it) gets the fallback, not another agent.
            if call.offers or call.deadline <= self._now:
                continue
            q = self.queues[call.queue]
            free = [a for a in self._agents.values() if self._free(a, q, call)]
            kept = [a for a in free if not owed(a, call)]
            if len(kept) < len(free):
                self._recheck_at = self._now + FOREIGN_RECHECK_S
            free = kept
            if not free:
                continue
            # Agents not yet tried for this call first; once all were, another round.
            fresh = [a for a in free if a.cfg.id not in call.tried]
            if not fresh:
                call.tried.clear()
                fresh = free
            for agent in self._choose(q, fresh):
                self._ring(call, q, agent, out)
        # ring_all: agents still free after every unrung caller was served join a ring already running.
        for call in ordered:
            q = self.queues[call.queue]
            if q.strategy != "ring_all" or not call.offers or any(o.answered for o in call.offers.values()):
                continue
            for agent in self._agents.values():
                if self._free(agent, q, call) and agent.cfg.id not in call.tried and not owed(agent, call):
                    self._ring(call, q, agent, out)

    def _ring(self, call: _Call, q: QueueConfig, agent: _Agent, out: list[Action]) -> None:
        call.tried.add(agent.cfg.id)
        agent.offer = call.call_id
        if not call.offers:
            self.entries.ringing(call.call_id, True)
        call.offers[agent.cfg.id] = _Offer(agent.cfg.id, self._now + q.agent_timeout)
        out.append(
            RingAgent(
                call.call_id,
                agent.cfg.id,
                agent.cfg.contact,
                q.name,
                q.agent_confirm,
                q.agent_timeout,
                call.request,
            )
        )

    def _settle(self, out: list[Action]) -> None:
        """After any change: offer free agents, then the waiting callers' due timers, then report agents."""
        self._dispatch(out)
        for call in sorted(self._calls.values(), key=_Call.order):
            if call.offers:
                continue
            q = self.queues[call.queue]
            if call.deadline <= self._now:
                wait = self._leave(call)
                self.entries.count(q.name, {"timeouts": 1})
                out += [
                    Fallback(call.call_id, q.name, q.fallback, "max_wait", call.caller, call.request),
                    CallLeftQueue(call.call_id, q.name, "timeout", wait),
                ]
            elif call.next_announce is not None and call.next_announce <= self._now:
                pos = self.position(call.call_id) or 1
                out.append(
                    Announce(
                        call.call_id,
                        q.name,
                        pos,
                        self._estimate(q, pos),
                        q.callback_key,
                        first=not call.announced,
                    )
                )
                call.announced = True
                call.next_announce = self._now + q.announce_every if q.announce_every > 0 else None
        for aid, a in self._agents.items():
            now_state = (a.state, a.pause_reason if a.state == "paused" else None)
            if self._reported[aid] != now_state:
                self._reported[aid] = now_state
                a.state_since = self._now
                out.append(AgentStateChanged(aid, now_state[0], now_state[1]))  # type: ignore[arg-type]

    def _estimate(self, q: QueueConfig, position: int) -> float | None:
        staffed = [
            a for a in self._agents.values() if a.logged_in and a.pause_reason is None and serves(a.cfg, q)
        ]
        if not staffed:
            return None
        recent = self._recent_handle[q.name]
        per_call = (sum(recent) / len(recent) if recent else q.expected_handle_time) + q.wrap_up
        capacity = sum(a.cfg.max_calls for a in staffed)
        free = sum(
            a.cfg.max_calls - len(a.calls) for a in staffed if a.offer is None and a.wrap_up_until is None
        )
        ahead = max(0, position - free)
        return round(math.ceil(ahead / capacity) * per_call, 1)

    def _offer_of(self, call_id: str, agent_id: str) -> tuple[_Call | None, _Offer | None]:
        call = self._calls.get(call_id)
        if call is None or agent_id not in call.offers:
            log.info("no offer of call %s to agent %s (withdrawn or never made)", call_id, agent_id)
            return None, None
        return call, call.offers[agent_id]

    def _drop_offer(self, call: _Call, agent_id: str, reason: str, out: list[Action]) -> None:
        if call.offers.pop(agent_id, None) is not None and not call.offers and call.call_id in self._calls:
            self.entries.ringing(call.call_id, False)
        self._agents[agent_id].offer = None
        out.append(StopRinging(call.call_id, agent_id, reason))  # type: ignore[arg-type]

    def _withdraw_offers(self, call: _Call, reason: str, out: list[Action]) -> None:
        for agent_id in list(call.offers):
            self._drop_offer(call, agent_id, reason, out)

    def _leave(self, call: _Call) -> float:
        del self._calls[call.call_id]
        self.entries.leave(call.call_id)
        return round(self._now - call.enqueued_at, 3)

    def _connect(self, call: _Call, agent_id: str, out: list[Action]) -> None:
        for other in [a for a in call.offers if a != agent_id]:
            self._drop_offer(call, other, "answered_elsewhere", out)
        call.offers.clear()
        agent = self._agents[agent_id]
        agent.offer = None
        agent.calls.add(call.call_id)
        agent.answered += 1
        wait = self._leave(call)
        within = 1 if wait <= self.queues[call.queue].service_level_s else 0
        self.entries.count(call.queue, {"answered": 1, "wait_total": wait, "answered_within": within})
        self._connected[call.call_id] = _Connected(call.call_id, call.queue, agent_id, self._now, call)
        self.entries.connected(call.call_id, call.queue, True)
        out += [
            Connect(call.call_id, agent_id, call.queue),
            CallLeftQueue(call.call_id, call.queue, "answered", wait, agent_id),
        ]
