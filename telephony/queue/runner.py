"""Drive the ACD on an asyncio loop: feed it events, fire its timers, hand its actions to pluggable handlers.

The SIP and WebRTC sides plug in by subclassing :class:`QueueHandlers` (ring an agent, play an announcement
and hold music, bridge, fallback). Timers go through an injected ``call_at`` with the ACD's clock: the loop's
by default, :class:`SimulatedTime` in tests and simulations, so nothing here needs real time.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from telephony.queue.acd import ACD
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
from telephony.queue.claims import AgentClaims, LocalAgentClaims
from telephony.queue.config import AgentConfig, QueueConfig
from telephony.queue.entries import QueueEntries
from telephony.queue.request import QueueRequest
from telephony.queue.store import CallbackStore

log = logging.getLogger(__name__)

# Timers fire this much after their deadline so the clock has surely reached it (loop.call_at may run a
# handle up to the clock resolution early).
TIMER_SLACK_S = 0.001
# An agent another node holds (a refused claim) is tried again after this long (a safety net: the node that frees
# the agent tells the others at once, which call QueueRunner.recheck).
ELSEWHERE_RETRY_S = 2.0
# An agent's claim is kept while they ring, talk or wrap up on this node, and given back in these states.
FREE_STATES = ("available", "paused", "offline")


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


CallAt = Callable[[float, Callable[[], None]], TimerHandle]


class QueueHandlers:
    """What the queue needs from the telephony side. Every method must return quickly: start the work
    (a coroutine returned is run as a task) and report results back through the runner's methods
    (``agent_answered``, ``agent_declined``, ``hangup`` ...). The defaults do nothing."""

    def ring(self, action: RingAgent) -> Awaitable[None] | None:
        """Ring the agent's SIP URI or agent page; on answer play the summary (and with ``confirm`` wait for
        key 1 / 2)."""

    def stop_ringing(self, action: StopRinging) -> Awaitable[None] | None:
        """Cancel the ring or hang up the agent's leg of this offer."""

    def announce(self, action: Announce) -> Awaitable[None] | None:
        """Play :func:`telephony.queue.announcements.announcement_text` then hold music to the caller."""

    def connect(self, action: Connect) -> Awaitable[None] | None:
        """Stop the hold music and bridge caller and agent; call ``runner.hangup(call_id)`` when it ends."""

    def fallback(self, action: Fallback, callback_id: int | None) -> Awaitable[None] | None:
        """Tell the caller what happens next: a callback recorded as ``callback_id`` (None: there is no store
        or the request could not be written), voicemail, or goodbye."""

    def transfer(self, action: Transfer) -> Awaitable[None] | None:
        """Blind-transfer the caller (SIP REFER or a new leg) to ``action.target``."""


class QueueRunner:
    """One ACD on one event loop. Every input method returns the actions it caused (after handing them to
    the handlers); listeners get every action too, including the events CallLeftQueue and AgentStateChanged."""

    def __init__(
        self, acd: ACD, handlers: QueueHandlers, *, call_at: CallAt, callbacks: CallbackStore | None = None,
        claims: AgentClaims | None = None,
    ):
        self.acd = acd
        # Before an agent rings, this node claims them (a cluster shares the agents; see telephony.queue.claims).
        self.claims: AgentClaims = claims if claims is not None else LocalAgentClaims()
        self.handlers = handlers
        self.callbacks = callbacks
        self._call_at = call_at
        self._timer: TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listeners: list[Callable[[Action], None]] = []

    @classmethod
    def on_loop(
        cls,
        agents: Iterable[AgentConfig],
        queues: Iterable[QueueConfig],
        handlers: QueueHandlers,
        *,
        callbacks: CallbackStore | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        claims: AgentClaims | None = None,
        entries: QueueEntries | None = None,
    ) -> QueueRunner:
        """A runner whose ACD uses the event loop's clock and timers (the product's setup); ``claims`` and
        ``entries`` shared with other nodes in a cluster (default: this process's)."""
        loop = loop or asyncio.get_running_loop()
        return cls(ACD(agents, queues, clock=loop.time, entries=entries), handlers, call_at=loop.call_at,
                   callbacks=callbacks, claims=claims)

    def add_listener(self, listener: Callable[[Action], None]) -> None:
        """Call ``listener`` with every action and event (supervisor dashboard, metrics, call records)."""
        self._listeners.append(listener)

    # --- inputs (see the ACD methods of the same names) -----------------------------------------------------
    def enqueue(self, call_id: str, request: QueueRequest) -> list[Action]:
        return self._run(self.acd.enqueue(call_id, request))

    def hangup(self, call_id: str) -> list[Action]:
        return self._run(self.acd.hangup(call_id))

    def caller_key(self, call_id: str, key: str) -> list[Action]:
        return self._run(self.acd.caller_key(call_id, key))

    def agent_answered(self, call_id: str, agent_id: str) -> list[Action]:
        return self._run(self.acd.agent_answered(call_id, agent_id))

    def agent_accepted(self, call_id: str, agent_id: str) -> list[Action]:
        return self._run(self.acd.agent_accepted(call_id, agent_id))

    def agent_declined(self, call_id: str, agent_id: str) -> list[Action]:
        return self._run(self.acd.agent_declined(call_id, agent_id))

    def agent_key(self, call_id: str, agent_id: str, key: str) -> list[Action]:
        return self._run(self.acd.agent_key(call_id, agent_id, key))

    def agent_unreachable(self, call_id: str, agent_id: str, reason: str = "unreachable") -> list[Action]:
        return self._run(self.acd.agent_unreachable(call_id, agent_id, reason))

    def agent_lost(self, call_id: str) -> list[Action]:
        return self._run(self.acd.agent_lost(call_id))

    def recheck(self, agent_id: str | None = None) -> list[Action]:
        """Another node freed ``agent_id`` or changed the shared queue (a cluster's notification): offer now."""
        return self._run(self.acd.recheck(agent_id))

    def set_agent_state(self, agent_id: str, state: str, reason: str | None = None) -> list[Action]:
        """Raises :class:`telephony.queue.acd.QueueError` for an unknown agent or state (an API 404/400)."""
        return self._run(self.acd.set_agent_state(agent_id, state, reason))

    async def close(self) -> None:
        """Stop the timer and wait for handler tasks still running."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- internals ----------------------------------------------------------------------------------------
    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._run(self.acd.tick())

    def _run(self, actions: list[Action]) -> list[Action]:
        # An agent held by another node is not rung; nor is it shown ringing here (it is busy, see below).
        refused = [a for a in actions if isinstance(a, RingAgent) and self._refused(a)]
        skipped = {a.agent_id for a in refused}
        # One failing handler or listener must not stop the others or the timers of every other caller.
        for action in actions:
            if action in refused or (isinstance(action, AgentStateChanged) and action.agent_id in skipped
                                     and action.state == "ringing"):
                continue
            if isinstance(action, AgentStateChanged) and action.state in FREE_STATES:
                self._release(action.agent_id)
            try:
                self._execute(action)
            except Exception:
                log.exception("queue handler failed on %s", action)
            for listener in self._listeners:
                try:
                    listener(action)
                except Exception:
                    log.exception("queue listener failed on %s", action)
        for ring in refused:
            self._run(self.acd.agent_elsewhere(ring.call_id, ring.agent_id, ELSEWHERE_RETRY_S))
        self._reschedule()
        return actions

    def _refused(self, ring: RingAgent) -> bool:
        try:
            return self.claims.claim(ring.agent_id, ring.call_id) is None
        except Exception:  # the shared store failed in an unexpected way: ringing beats leaving callers waiting
            log.exception("claiming agent %s failed; ringing them anyway", ring.agent_id)
            return False

    def _release(self, agent_id: str) -> None:
        try:
            self.claims.release(agent_id)
        except Exception:
            log.exception("releasing agent %s failed (their lease runs out by itself)", agent_id)

    def _reschedule(self) -> None:
        due = self.acd.next_deadline()
        if due == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = None if due is None else self._call_at(due + TIMER_SLACK_S, self._on_timer)

    def _execute(self, action: Action) -> None:
        h = self.handlers
        result: Awaitable[None] | None = None
        if isinstance(action, RingAgent):
            result = h.ring(action)
        elif isinstance(action, StopRinging):
            result = h.stop_ringing(action)
        elif isinstance(action, Announce):
            result = h.announce(action)
        elif isinstance(action, Connect):
            result = h.connect(action)
        elif isinstance(action, Transfer):
            result = h.transfer(action)
        elif isinstance(action, Fallback):
            result = self._fallback(action)
        elif isinstance(action, CallLeftQueue | AgentStateChanged):
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _fallback(self, action: Fallback) -> Awaitable[None] | None:
        if action.kind != "callback" or self.callbacks is None:
            return self.handlers.fallback(action, None)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # No loop (a simulation): write inline.
            return self.handlers.fallback(action, self._record_callback(action))
        return self._fallback_after_write(action)

    async def _fallback_after_write(self, action: Fallback) -> None:
        # A database commit can take milliseconds (fsync): not on the loop that carries the audio.
        callback_id = await asyncio.to_thread(self._record_callback, action)
        result = self.handlers.fallback(action, callback_id)
        if inspect.isawaitable(result):
            await result

    def _record_callback(self, action: Fallback) -> int | None:
        assert self.callbacks is not None
        try:
            return self.callbacks.add(
                call_id=action.call_id,
                caller=action.caller,
                queue=action.queue,
                reason=action.reason,
                handoff=action.request.details,
            )
        except Exception:
            # The caller must still hear something: the handler gets None and can apologise.
            log.exception("could not record the callback request of call %s", action.call_id)
            return None

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("queue handler failed", exc_info=task.exception())


class _SimTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimulatedTime:
    """A clock and timer scheduler moved by hand: ``clock`` and ``call_at`` for an ACD and runner in tests
    and simulations. :meth:`advance` fires due timers in time order, each at its own time."""

    def __init__(self, start: float = 0.0):
        self.now = start
        self._heap: list[tuple[float, int, Callable[[], None], _SimTimer]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> _SimTimer:
        handle = _SimTimer()
        heapq.heappush(self._heap, (when, next(self._seq), callback, handle))
        return handle

    def call_later(self, delay: float, callback: Callable[[], None]) -> _SimTimer:
        return self.call_at(self.now + delay, callback)

    def next_timer(self) -> float | None:
        """When the next live timer fires, or None."""
        while self._heap and self._heap[0][3].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def advance(self, seconds: float) -> None:
        """Move the clock forward, firing every timer due on the way."""
        self.run_until(self.now + seconds)

    def run_until(self, t: float) -> None:
        while (when := self.next_timer()) is not None and when <= t:
            _, _, callback, handle = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            handle.cancelled = True
            callback()
        self.now = max(self.now, t)
