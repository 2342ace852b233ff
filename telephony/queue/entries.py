"""Waiting callers and queue statistics as every ACD of a cluster sees them.

A node's ACD holds the callers whose media it carries; it also writes each of them into a :class:`QueueEntries`
store (joined, ringing, left) and counts what happens to them there (answered, abandoned ...). On one node the
store is :class:`LocalQueueEntries`, in this process. In a cluster it is shared
(``voicebot.cluster.redis_state.RedisQueueEntries``): every node's ACD then sees the other nodes' callers in
the order of service, so an agent freed on one node is left for an earlier caller on another (whose node
rings the agent), and the statistics are the cluster's. An entry is owned by the node that wrote it; a node that
dies stops renewing its entries, and the first reader after their lease counts them abandoned (``node_lost``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# The counters of a queue (all start at 0): callers answered (and within the service level), abandoned, timed
# out, sent to a callback, blind-transferred, whose agent's leg dropped, lost with their node; sums of waits and
# handle times for the averages.
COUNTERS = ("answered", "answered_within", "abandoned", "timeouts", "callbacks", "transferred", "agent_lost",
            "node_lost", "wait_total", "abandon_wait_total", "handled", "handle_total")


@dataclass(frozen=True)
class QueueEntry:
    """A caller waiting in ``queue`` on ``node``, ``waited_s`` so far; ``ringing`` while an agent is offered it."""

    call_id: str
    queue: str
    node: str
    caller: str | None
    priority: int
    waited_s: float
    ringing: bool = False


class QueueEntries(Protocol):
    """The waiting callers of every node and the queues' counters (see the module docstring)."""

    node_id: str

    def join(self, call_id: str, queue: str, caller: str | None, priority: int, returned: bool) -> None:
        """This node's caller starts waiting (``returned``: back from an agent whose leg dropped, served first)."""

    def ringing(self, call_id: str, ringing: bool) -> None:
        """This node's caller is being offered to an agent (True), or no longer (False)."""

    def leave(self, call_id: str) -> None:
        """This node's caller stopped waiting (answered, gone, fallback)."""

    def connected(self, call_id: str, queue: str, connected: bool) -> None:
        """This node's caller from ``queue`` talks to an agent now (True), or no longer (False)."""

    def connected_now(self, queue: str) -> int:
        """How many of ``queue``'s callers talk to an agent now, on every node (a shared store unreachable: on
        this node)."""

    def count(self, queue: str, amounts: dict[str, float]) -> None:
        """Add to ``queue``'s counters (names in :data:`COUNTERS`)."""

    def counters(self, queue: str) -> dict[str, float]:
        """``queue``'s counters (every name in :data:`COUNTERS`)."""

    def waiting(self) -> list[QueueEntry]:
        """Every node's waiting callers in the order of service (returned callers, then higher priority, then
        arrival). May be incomplete when a shared store is unreachable (then this node's callers or none)."""


class LocalQueueEntries:
    """One node: the entries and counters in this process (``clock``: the ACD's)."""

    def __init__(self, clock: Callable[[], float], node_id: str = "") -> None:
        self.node_id = node_id
        self.clock = clock
        self._seq = 0
        self._entries: dict[str, tuple[tuple[bool, int, float, int], QueueEntry, float]] = {}
        self._counters: dict[str, Counter[str]] = {}
        self._connected: dict[str, str] = {}  # call -> queue

    def join(self, call_id: str, queue: str, caller: str | None, priority: int, returned: bool) -> None:
        self._seq += 1
        now = self.clock()
        entry = QueueEntry(call_id, queue, self.node_id, caller, priority, 0.0)
        self._entries[call_id] = ((not returned, -priority, now, self._seq), entry, now)

    def ringing(self, call_id: str, ringing: bool) -> None:
        if call_id in self._entries:
            order, entry, since = self._entries[call_id]
            self._entries[call_id] = (order, QueueEntry(entry.call_id, entry.queue, entry.node, entry.caller,
                                                        entry.priority, 0.0, ringing), since)

    def leave(self, call_id: str) -> None:
        self._entries.pop(call_id, None)

    def connected(self, call_id: str, queue: str, connected: bool) -> None:
        if connected:
            self._connected[call_id] = queue
        else:
            self._connected.pop(call_id, None)

    def connected_now(self, queue: str) -> int:
        return sum(1 for q in self._connected.values() if q == queue)

    def count(self, queue: str, amounts: dict[str, float]) -> None:
        self._counters.setdefault(queue, Counter()).update(amounts)

    def counters(self, queue: str) -> dict[str, float]:
        have = self._counters.get(queue, Counter())
        return {name: have[name] for name in COUNTERS}

    def waiting(self) -> list[QueueEntry]:
        now = self.clock()
        out = []
        for _order, e, since in sorted(self._entries.values(), key=lambda item: item[0]):
            out.append(QueueEntry(e.call_id, e.queue, e.node, e.caller, e.priority, round(now - since, 3), e.ringing))
        return out
