"""The calls in progress, as the supervisor dashboard shows them: one :class:`LiveCall` summary per call.

:class:`LiveCalls` listens to the process's event bus (:mod:`voicebot.events`) and folds the events of each
call (``call.started``, ``turn``, ``turn.updated``, ``call.state``, ``handoff``, ``call.taken_over``,
``call.handed_back``, ``call.ended``) into a small summary: state, intents so far, the caller's frustration, the last reply latency,
the supervisor who took the call over. Whenever a summary changes it publishes ``call.updated``
``{call_id, call}``; it publishes ``alert`` when a caller's frustration reaches ``supervisor.alert_frustration``
and when a queued caller has waited longer than ``supervisor.alert_wait_s`` (each alert with an ``id``:
:mod:`voicebot.alerts` keeps them and what supervisors do about them).

Its own events are published just after the event that caused them has reached every subscriber, so a
dashboard sees them in ``seq`` order (the bus delivers synchronously on its loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dialogs.manager.signals import TurnSignals
from voicebot.alerts import alert_id
from voicebot.config import SupervisorConfig
from voicebot.events import Event, EventBus
from voicebot.storage.calls import DIALOGUE_ACTS

log = logging.getLogger(__name__)

LEVELS = ("calm", "annoyed", "frustrated")
CALL_STATES = ("bot", "queued", "agent", "supervisor")  # supervisor: taken over from the bot (barge-in)
WAIT_CHECK_S = 1.0  # how often queued callers' waits are checked against the alert threshold
REMEMBER_AGENTS = 2000  # ended calls whose agent is kept, so their last events still reach that agent


@dataclass
class LiveCall:
    """What the dashboard shows of one call in progress (``as_dict`` is the contract's LiveCall JSON)."""

    id: str
    channel: str
    caller_id: str | None = None
    dialled: str | None = None
    start: str | None = None
    state: str = "bot"
    queue: str | None = None
    agent_id: str | None = None
    intents: list[str] = field(default_factory=list)  # what the caller asked for so far (no greet, thanks ...)
    frustration: dict[str, Any] | None = None
    last_latency_ms: float | None = None
    turns: int = 0
    customer: str | None = None
    node: str | None = None  # the cluster node carrying the call (cluster.node_id; None on a single node)
    taken_over_by: str | None = None  # the supervisor who took the call over from the bot
    # not in the JSON: what the alert rules and the detail view need
    handoff: dict[str, Any] | None = None
    queued_at: float | None = None
    wait_alerted: bool = False
    alerts_raised: dict[str, int] = field(default_factory=dict)  # per kind: numbers this call's next alert id

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "caller_id": self.caller_id,
            "dialled": self.dialled,
            "start": self.start,
            "state": self.state,
            "queue": self.queue,
            "agent_id": self.agent_id,
            "intents": list(self.intents),
            "frustration": dict(self.frustration) if self.frustration else None,
            "last_latency_ms": self.last_latency_ms,
            "turns": self.turns,
            "customer": self.customer,
            "node": self.node,
            "taken_over_by": self.taken_over_by,
        }


def _merge_agents(latest: list[dict[str, Any]], of_node: dict[str | None, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The agents as the node that rings or connects each one sees them (it has the call), else as ``latest``."""
    holder: dict[Any, dict[str, Any]] = {}
    for agents in of_node.values():
        for agent in agents:
            if isinstance(agent, dict) and (agent.get("calls") or agent.get("offered_call")):
                holder[agent.get("id")] = agent
    return [holder.get(a.get("id"), a) if isinstance(a, dict) else a for a in latest]


def _level_rank(level: Any) -> int:
    return LEVELS.index(level) if level in LEVELS else -1


class LiveCalls:
    """Registry of the calls in progress, fed by the bus; see the module docstring.

    ``clock`` gives epoch seconds (events' ``ts`` use the same clock).
    """

    def __init__(
        self,
        bus: EventBus,
        config: SupervisorConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.bus = bus
        self.config = config or SupervisorConfig.model_validate({})
        self.clock = clock
        self.calls: dict[str, LiveCall] = {}
        self.queues: list[dict[str, Any]] | None = None  # the last `queue` event's snapshot
        self.agents: list[dict[str, Any]] | None = None
        # A cluster: each node's last view of the agents (its ACD knows its own calls only), merged into `agents`.
        self._agents_of_node: dict[str | None, list[dict[str, Any]]] = {}
        self.last_seq = 0
        self._agent_of: OrderedDict[str, str] = OrderedDict()  # call -> agent, kept a while after the call
        self._outbox: list[tuple[str, dict[str, Any]]] = []
        self._flush_scheduled = False
        self._ticker: asyncio.Task | None = None
        self._attached = False

    # lifecycle

    def attach(self) -> None:
        """Start listening to the bus (idempotent)."""
        if not self._attached:
            self._attached = True
            self.bus.add_listener(self.on_event)

    def start(self) -> None:
        """Listen, and check queued callers' waits every second (call on the bus's running loop)."""
        self.attach()
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick_forever())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(WAIT_CHECK_S)
            try:
                self.check_waits()
            except Exception:
                log.exception("live calls: checking queue waits failed")

    # reads

    def snapshot(self, accept: Callable[[LiveCall], bool] | None = None) -> list[dict[str, Any]]:
        """Every call in progress (oldest first) as LiveCall JSON, optionally only those ``accept`` allows."""
        return [c.as_dict() for c in self.calls.values() if accept is None or accept(c)]

    def get(self, call_id: str) -> LiveCall | None:
        return self.calls.get(call_id)

    def agent_of(self, call_id: str) -> str | None:
        """The agent who has (or had, for a recently ended call) the call, or None."""
        return self._agent_of.get(call_id)

    # the bus listener

    def on_event(self, event: Event) -> None:
        """Fold one bus event into the registry (runs on the bus's loop before subscribers get the event)."""
        seq = event.get("seq")
        if isinstance(seq, int):
            self.last_seq = max(self.last_seq, seq)
        kind = event.get("type")
        if kind == "queue":
            self._on_queue(event)
            return
        call_id = event.get("call_id")
        if not isinstance(call_id, str):
            return
        if kind == "call.started":
            info = event.get("call") or {}
            new = LiveCall(
                id=call_id,
                channel=str(info.get("channel") or "unknown"),
                caller_id=info.get("caller_id"),
                dialled=info.get("dialled"),
                start=info.get("start"),
                node=info.get("node"),
            )
            self.calls[call_id] = new
            self._updated(new)
            return
        if kind == "call.ended":
            self.calls.pop(call_id, None)
            return
        call = self.calls.get(call_id)
        if call is None:
            return  # a call that started before the registry listened: nothing to summarise it from
        before = call.as_dict()
        if kind == "turn":
            self._on_turn(call, event.get("turn") or {})
        elif kind == "turn.updated":
            latency = (event.get("fields") or {}).get("latency_ms")
            if isinstance(latency, (int, float)):
                call.last_latency_ms = round(float(latency), 1)
        elif kind == "call.state":
            self._on_state(call, event)
        elif kind == "call.taken_over" and isinstance(event.get("by"), str):
            call.state, call.taken_over_by = "supervisor", event["by"]
        elif kind == "call.handed_back":
            call.state, call.taken_over_by = "bot", None
        elif kind == "handoff":
            packet = event.get("packet")
            if isinstance(packet, dict):
                call.handoff = packet
            if isinstance(event.get("customer"), str):
                call.customer = event["customer"]
        if call.as_dict() != before:
            self._updated(call)

    def _on_turn(self, call: LiveCall, turn: dict[str, Any]) -> None:
        call.turns += 1
        extra = turn.get("extra") or {}
        if turn.get("speaker") == "caller":
            for intent in turn.get("intents") or []:
                name = intent.get("name") if isinstance(intent, dict) else None
                if isinstance(name, str) and name not in call.intents and name not in DIALOGUE_ACTS:
                    call.intents.append(name)
            signals = extra.get("signals")
            if isinstance(signals, dict):
                graded = TurnSignals.from_dict(signals)
                if graded.level is not None:
                    self._on_frustration(call, graded)
        elif turn.get("speaker") == "bot" and isinstance(extra.get("customer"), str):
            call.customer = extra["customer"]
        if isinstance(turn.get("latency_ms"), (int, float)):
            call.last_latency_ms = round(float(turn["latency_ms"]), 1)

    def _on_frustration(self, call: LiveCall, signals: TurnSignals) -> None:
        previous = call.frustration["level"] if call.frustration else None
        call.frustration = {
            "score": round(signals.frustration, 3) if signals.frustration is not None else None,
            "level": signals.level,
            "trend": signals.trend or "steady",
            "explanation": signals.explanation,
        }
        threshold = _level_rank(self.config.alert_frustration)
        # One alert each time the caller crosses the threshold, not one per turn while they stay above it.
        if _level_rank(call.frustration["level"]) >= threshold > _level_rank(previous):
            who = call.customer or call.caller_id or "A caller"
            why = call.frustration["explanation"]
            self._alert(
                call,
                "frustration",
                level=call.frustration["level"],
                message=f"{who} is {call.frustration['level']}" + (f": {why}" if why else "."),
            )

    def _on_state(self, call: LiveCall, event: Event) -> None:
        state = event.get("state")
        if state not in CALL_STATES:
            return
        call.state = state
        if state == "queued":
            call.queue = event.get("queue") or call.queue
            if call.queued_at is None:
                call.queued_at = float(event.get("ts") or self.clock())
                call.wait_alerted = False
        else:
            call.queued_at = None
        if state == "agent":
            agent_id = event.get("agent_id")
            if isinstance(agent_id, str):
                call.agent_id = agent_id
                self._agent_of[call.id] = agent_id
                while len(self._agent_of) > REMEMBER_AGENTS:
                    self._agent_of.popitem(last=False)

    def _on_queue(self, event: Event) -> None:
        queues, agents = event.get("queues"), event.get("agents")
        # Accept both the bodies of GET /api/queues / /api/agents and their bare lists.
        if isinstance(queues, dict):
            queues = queues.get("queues")
        if isinstance(agents, dict):
            agents = agents.get("agents")
        if isinstance(queues, list):
            self.queues = queues  # any node's: waiting callers and statistics are the cluster's
        if isinstance(agents, list):
            self._agents_of_node[event.get("node")] = agents
            self.agents = agents if len(self._agents_of_node) == 1 else _merge_agents(agents, self._agents_of_node)

    # alerts on waits

    def check_waits(self, now: float | None = None) -> int:
        """Alert once for each queued caller who has waited longer than ``alert_wait_s``; returns how many."""
        now = self.clock() if now is None else now
        alerts = 0
        for call in self.calls.values():
            if call.state != "queued" or call.queued_at is None or call.wait_alerted:
                continue
            waited = now - call.queued_at
            if waited > self.config.alert_wait_s:
                call.wait_alerted = True
                alerts += 1
                who = call.customer or call.caller_id or "A caller"
                self._alert(
                    call,
                    "wait",
                    queue=call.queue,
                    waited_s=round(waited, 1),
                    message=f"{who} has waited {waited:.0f} s in queue {call.queue or '?'}.",
                )
        return alerts

    # publishing

    def _alert(self, call: LiveCall, kind: str, **data: Any) -> None:
        """Raise an alert on ``call`` with its id (the same on every node: voicebot.alerts)."""
        n = call.alerts_raised[kind] = call.alerts_raised.get(kind, 0) + 1
        self._emit("alert", id=alert_id(call.id, kind, n), kind=kind, call_id=call.id, **data)

    def _updated(self, call: LiveCall) -> None:
        self._emit("call.updated", call_id=call.id, call=call.as_dict())

    def _emit(self, type_: str, **data: Any) -> None:
        """Publish after the current event has reached the subscribers (or at once outside the bus's loop)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            self.bus.publish(type_, **data)
            return
        self._outbox.append((type_, data))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox, self._outbox = self._outbox, []
        for type_, data in outbox:
            self.bus.publish(type_, **data)
