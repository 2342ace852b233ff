"""The process's event stream: what happens on calls and queues, as small JSON-ready dicts.

Every event is ``{"type": ..., "seq": n, "ts": epoch seconds, ...}``. Publishers call :meth:`EventBus.publish`
from any thread (the call store publishes from its writer thread after each commit); subscribers live on the
event loop the bus is bound to and receive events in ``seq`` order. The supervisor dashboard and
``GET /ws/events`` are subscribers; so is the registry of live calls.

Event types (docs/api.md documents their fields):

- ``call.started``   ``call_id``, ``call`` (id, channel, caller_id, dialled, start)
- ``turn``           ``call_id``, ``turn`` (id, seq, speaker caller|bot|agent, text, start, end, intents,
  latency_ms, extra): a turn finalised and stored
- ``turn.updated``   ``call_id``, ``turn_id``, ``fields`` (end, latency_ms, extra ...)
- ``call.state``     ``call_id``, ``state`` (bot, queued, agent), optional ``queue``, ``agent_id``
- ``handoff``        ``call_id``, ``packet``: the hand-off packet the agent sees, ``customer``: the identified
  customer's name or None (:func:`handoff_customer`; a subscriber reads it here, never out of the packet)
- ``call.taken_over`` ``call_id``, ``by`` (a supervisor's username), ``at``: the supervisor took the call from the bot
- ``call.handed_back`` ``call_id``, ``by``, ``at``: the supervisor who had taken the call over gave it back to the bot
- ``call.joined``    ``call_id``, ``by``: a supervisor joined the caller and the agent (a three-way conversation)
- ``call.ended``     ``call_id``, ``outcome``, ``end_reason``, ``end``
- ``queue``          ``queues``, ``agents``: a snapshot after each change of the agent queue
- ``alert``          ``id``, ``kind`` (frustration, wait), ``message``, optional ``call_id`` / ``queue``
- ``alert.updated``  ``call_id``, ``alert`` (voicebot.alerts.Alert): acknowledged, assigned or resolved

In a cluster every event also has ``node``: the ``cluster.node_id`` of the node it happened on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dialogs.manager.handoff import HandoffPacket

log = logging.getLogger(__name__)

Event = dict[str, Any]


def handoff_customer(packet: HandoffPacket | None) -> str | None:
    """The ``customer`` field of a ``handoff`` event: the name of the customer the caller was identified as."""
    return packet.customer.name if packet is not None and packet.customer is not None else None


class Subscription:
    """One subscriber's queue of events. Iterate it (``async for event in sub``) until :meth:`close`.

    A subscriber that falls more than ``maxsize`` events behind loses the oldest ones (counted in
    ``dropped``) rather than holding memory or slowing the calls down.
    """

    def __init__(self, bus: EventBus, maxsize: int, accept: Callable[[Event], bool] | None):
        self._bus = bus
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._maxsize = maxsize
        self.accept = accept
        self.dropped = 0
        self.closed = False

    def _put(self, event: Event) -> None:
        if self.closed or (self.accept is not None and not self.accept(event)):
            return
        if self._queue.qsize() >= self._maxsize:
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event | None:
        """The next event, or None once closed."""
        if self.closed and self._queue.empty():
            return None
        return await self._queue.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bus._subs.discard(self)
            self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        while True:
            event = await self.get()
            if event is None:
                return
            yield event


class EventBus:
    """Fan-out of events to subscribers and listeners on one event loop; publish from any thread.

    In a cluster (``node_id`` set) every event published here carries ``"node": node_id``, and the other nodes'
    events arrive through :meth:`relay` (``voicebot.cluster.redis_state.EventRelay``)."""

    def __init__(self, node_id: str = "") -> None:
        self.node_id = node_id
        self._subs: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        # Published, not yet delivered, in seq order: seq is taken and the event queued under one lock, and only the
        # loop delivers, from the front. An event published on the loop is delivered at once, after any earlier one
        # another thread queued (delivering it straight away overtook those: a dashboard saw seq 9 before 7).
        self._pending: collections.deque[Event] = collections.deque()
        self._delivering = False  # on the loop: a listener's own publish waits for the event being delivered

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Deliver on ``loop`` (default: the running one). Events published before binding are dropped."""
        self._loop = loop or asyncio.get_running_loop()

    def publish(self, type_: str, **data: Any) -> Event:
        """Send an event to every subscriber; returns it. Never raises into the publisher."""
        event: Event = {"type": type_, **data}
        if self.node_id:
            event["node"] = self.node_id
        return self._send(event, stamp=True)

    def relay(self, event: Event) -> Event:
        """Deliver an event another node published (its ``ts`` and ``node`` kept, a ``seq`` of this bus)."""
        return self._send(dict(event), stamp=False)

    def _send(self, event: Event, stamp: bool) -> Event:
        """Number ``event`` (``seq``; ``ts`` too if ``stamp``) and queue it for the loop; deliver now if on the loop."""
        loop = self._loop
        with self._lock:  # seq and ts in the order events are queued, across threads
            event["seq"] = next(self._seq)
            if stamp:
                event["ts"] = time.time()
            if loop is None or loop.is_closed():
                return event
            self._pending.append(event)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._drain()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown)
                loop.call_soon_threadsafe(self._drain)
        return event

    def _drain(self) -> None:
        """Deliver every queued event, oldest first (on the loop; a publish during a delivery waits its turn)."""
        if self._delivering:
            return
        self._delivering = True
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    event = self._pending.popleft()
                self._deliver(event)
        finally:
            self._delivering = False

    def subscribe(self, maxsize: int = 2000, accept: Callable[[Event], bool] | None = None) -> Subscription:
        """A new subscription (call on the bus's loop); ``accept`` filters events for it."""
        sub = Subscription(self, maxsize, accept)
        self._subs.add(sub)
        return sub

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        """Call ``fn(event)`` on the loop for every event (before subscribers get it); keep it quick."""
        self._listeners.append(fn)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def _deliver(self, event: Event) -> None:
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:
                log.exception("event listener failed on %s", event.get("type"))
        for sub in list(self._subs):
            sub._put(event)
