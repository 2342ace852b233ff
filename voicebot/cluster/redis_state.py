"""What the nodes of a cluster share through Redis (``cluster.redis_url``): live events, failed logins, heartbeats.

- :class:`EventRelay` appends this node's call events to the stream ``voicebot:events`` and feeds the other
  nodes' into the local :class:`~voicebot.events.EventBus`, so every node's live calls (and dashboards) see every
  node's calls. A stream, not pub/sub: a node that starts, or whose Redis connection was lost, reads on from
  where it was and misses nothing (events wait in a local outbox while Redis is down).
- :class:`RedisAgentClaims` gives each agent one owner node at a time (ringing, talking, wrapping up): a lease
  with a fencing token, taken and given back by atomic Lua scripts (:mod:`telephony.queue.claims`).
- :class:`RedisQueueEntries` holds every node's waiting callers (one sorted set in the order of service, an entry
  per caller with a lease its node renews) and the queues' counters (:mod:`telephony.queue.entries`).
- :class:`QueueChanges` tells the nodes at once (Redis pub/sub on ``voicebot:queue:changed``) when a node gives an
  agent back, or a caller leaves the shared queue or starts or stops being rung, so an earlier caller's node rings a freed agent without waiting
  for its timed retry (which stays as the safety net for a message missed while disconnected).
- :class:`RedisFailureLog` keeps the login throttle's failed attempts in sorted sets every node counts.
- A node that starts (:meth:`ClusterState.start`) first removes what its node id held before a restart (callers
  talking to an agent or waiting, agents' claims): it holds nothing yet, and a restart quicker than
  ``cluster.node_lost_after_s`` is never seen as a lost node whose leftovers a survivor would sweep.
- :class:`NodeWatch` beats ``voicebot:nodes`` every ``cluster.heartbeat_s``; when a node is silent for
  ``cluster.node_lost_after_s`` one survivor (the one that takes the lease ``voicebot:lost:NODE``) closes that
  node's open call records with outcome ``node_lost``.

Keys (all under ``voicebot:``): ``events`` (stream), ``nodes`` (sorted set node -> last beat, Redis time),
``lost:NODE`` (lease), ``agent:ID`` (lease: ``NODE CALL TOKEN``), ``agent-fence`` (counter), ``login:fail:KEY`` (sorted set), ``login:known:USER`` (list),
``queue:waiting`` (sorted set of entries), ``queue:entry:CALL`` (hash, leased), ``queue:stats:QUEUE`` (hash of counters),
``queue:connected:QUEUE`` (hash call -> node: callers talking to an agent), ``queue:changed`` (pub/sub channel).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import redis
import redis.asyncio as aredis

from telephony.queue.claims import Claim
from telephony.queue.entries import COUNTERS, QueueEntry
from telephony.queue.live import TransferResult
from voicebot.events import Event, EventBus
from voicebot.live import LiveCalls
from voicebot.server.access import MemoryFailureLog
from voicebot.storage import CallStore
from voicebot.transfer.store import TransferStore

log = logging.getLogger(__name__)

PREFIX = "voicebot:"
EVENTS = PREFIX + "events"
NODES = PREFIX + "nodes"
# What a node publishes for the others: what happens on its calls. Its live-call summaries and alerts
# (call.updated, alert) every node derives itself from these. queue: a node's snapshot of the queues (waiting
# callers and statistics are the cluster's; its agents as its ACD sees them, merged by voicebot.live).
# agent.set: an agent logged in, paused or out on one node, which every node's ACD applies. alert.updated: a
# supervisor on one node acknowledged or assigned an alert (voicebot.alerts), or its call ended there.
SHARED_EVENTS = frozenset({"call.started", "turn", "turn.updated", "call.state", "handoff", "call.ended",
                           "agent.set", "queue", "alert.updated", "call.taken_over", "call.joined"})
STREAM_MAXLEN = 50_000  # events kept (approximately) for nodes that start or reconnect
OUTBOX_MAX = 50_000  # events waiting while Redis is down; older ones are dropped (logged)
RETRY_S = 0.5  # pause before talking to Redis again after an error
READ_BLOCK_MS = 1000
# The queue's Redis calls run on the event loop: after a failure they wait this long (or a heartbeat reaching
# Redis), so an unreachable Redis costs the audio at most one short timeout every few seconds.
QUEUE_RETRY_S = 3.0
LOST_LEASE_MS = 60_000  # how long the survivor closing a lost node's calls holds the lease

# The lease is released only by its holder (its token), never a later holder's.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
# An agent's claim given back: the nodes are told at once (after the delete, so their claims succeed).
RELEASE_AGENT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('publish', KEYS[2], ARGV[2])
  return 1
end
return 0
"""
# Claim an agent: free -> take it with a new fencing token; held -> nil. (One script: no other node between.)
CLAIM = """
if redis.call('exists', KEYS[1]) == 1 then return nil end
local token = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. token, 'PX', ARGV[3])
return token
"""
QUEUE_WAITING = PREFIX + "queue:waiting"
QUEUE_ENTRY = PREFIX + "queue:entry:"
QUEUE_STATS = PREFIX + "queue:stats:"
QUEUE_CONNECTED = PREFIX + "queue:connected:"
QUEUE_CHANGED = PREFIX + "queue:changed"
# A caller starts waiting: ranked by (returned first, higher priority, arrival by Redis's clock) in one score.
# The member names the call, its node, queue and arrival, so a lapsed entry can still be counted for its queue.
JOIN = """
local t = redis.call('time')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local member = cjson.encode({ARGV[1], ARGV[2], ARGV[3], now})
local score = tonumber(ARGV[5]) * 1e13 - tonumber(ARGV[4]) * 1e10 + now
redis.call('zadd', KEYS[1], score, member)
redis.call('hset', KEYS[2], 'caller', ARGV[6], 'priority', ARGV[4], 'ringing', '0')
redis.call('pexpire', KEYS[2], ARGV[7])
return {member, tostring(score)}
"""


def _change(node_id: str, agent_id: str | None) -> str:
    """A message on :data:`QUEUE_CHANGED`: which node changed the shared queue, and the agent it freed (if any)."""
    return json.dumps({"node": node_id, "agent": agent_id})


def _client(url: str) -> aredis.Redis:
    # Short timeouts: an unreachable Redis is noticed within a second, and calls never wait for it.
    return aredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=1.0, decode_responses=True)


class EventRelay:
    """Shares this node's call events through a Redis stream and delivers the other nodes' to ``bus``.

    ``bus`` must stamp its events with ``node_id`` (``EventBus(node_id=...)``)."""

    def __init__(self, bus: EventBus, redis_url: str, node_id: str):
        if not node_id:
            raise ValueError("an event relay needs this node's cluster.node_id")
        self.bus = bus
        self.node_id = node_id
        self._redis = _client(redis_url)
        self._outbox: collections.deque[Event] = collections.deque()
        self._pending = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.last_id = "0"  # the last stream entry read: a fresh node replays what the stream holds
        self.connected = False
        self.dropped = 0
        self._closing = False

    async def start(self) -> None:
        """Start sharing (call on the bus's loop): the stream so far is replayed into the bus first, when Redis
        answers; while it does not, the node goes on alone and catches up later."""
        self.bus.add_listener(self._on_local)
        self._tasks = [asyncio.create_task(self._read_forever(), name="cluster-events-in"),
                       asyncio.create_task(self._write_forever(), name="cluster-events-out")]

    async def close(self) -> None:
        # The loops also stop on the flag: redis-py may turn a cancellation mid-read into a timeout error.
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._redis.aclose()

    def _on_local(self, event: Event) -> None:
        if event.get("node") != self.node_id or event.get("type") not in SHARED_EVENTS:
            return  # another node's (relayed here), or derived by every node itself
        if len(self._outbox) >= OUTBOX_MAX:
            self._outbox.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("cluster: Redis has been unreachable long: %d live event(s) dropped", self.dropped)
        self._outbox.append(event)
        self._pending.set()

    async def _write_forever(self) -> None:
        while not self._closing:
            await self._pending.wait()
            self._pending.clear()
            while self._outbox and not self._closing:
                batch = list(self._outbox)[:500]
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for event in batch:
                            body = {k: v for k, v in event.items() if k != "seq"}
                            pipe.xadd(EVENTS, {"e": json.dumps(body, default=str)}, maxlen=STREAM_MAXLEN,
                                      approximate=True)
                        await pipe.execute()
                except (redis.RedisError, OSError) as exc:
                    self._down(exc)
                    await asyncio.sleep(RETRY_S)
                    continue  # the batch stays in the outbox, in order
                for _ in batch:
                    self._outbox.popleft()

    async def _read_forever(self) -> None:
        while not self._closing:
            try:
                answer: list[Any] = await self._redis.xread(  # type: ignore[assignment]
                    {EVENTS: self.last_id}, count=1000, block=READ_BLOCK_MS)
            except (redis.RedisError, OSError) as exc:
                self._down(exc)
                await asyncio.sleep(RETRY_S)
                continue
            if not self.connected:
                self.connected = True
                log.info("cluster: sharing live events through Redis (from entry %s)", self.last_id)
            for _stream, entries in answer or []:
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    self._relay(fields.get("e"))

    def _relay(self, raw: str | None) -> None:
        try:
            event = json.loads(raw or "")
        except ValueError:
            log.error("cluster: an unreadable event in %s is skipped", EVENTS)
            return
        # This node's own events it has delivered already (or, from before a restart, they are stale).
        if isinstance(event, dict) and event.get("node") != self.node_id:
            self.bus.relay(event)

    def _down(self, exc: BaseException) -> None:
        if self.connected:
            self.connected = False
            log.warning("cluster: Redis unreachable (%s); live events wait and are sent when it is back", exc)


class QueueChanges:
    """The other nodes' notices that they gave an agent back, or that a caller left the shared queue or started or
    stopped being rung (``voicebot:queue:changed``), handed to the sinks with the freed agent's id (None: a caller's
    entry changed); a node's ACD offers again at once (``QueueRunner.recheck``). Pub/sub, not the stream: a notice missed while Redis was
    away is made good by the ACD's timed retries, so nothing needs replaying."""

    def __init__(self, redis_url: str, node_id: str):
        self.node_id = node_id
        # No read timeout: the subscription is quiet for long stretches.
        self._redis = aredis.Redis.from_url(redis_url, socket_connect_timeout=1.0, decode_responses=True)
        self._sinks: list[Callable[[str | None], Any]] = []
        self._task: asyncio.Task | None = None
        self._closing = False
        self.subscribed = asyncio.Event()  # set while subscribed (for tests and start-up ordering)

    def add_sink(self, sink: Callable[[str | None], Any]) -> None:
        self._sinks.append(sink)

    def remove_sink(self, sink: Callable[[str | None], Any]) -> None:
        self._sinks.remove(sink)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="cluster-queue-changes")

    async def close(self) -> None:
        self._closing = True  # see EventRelay.close
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._redis.aclose()

    async def _listen_forever(self) -> None:
        while not self._closing:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(QUEUE_CHANGED)
                    self.subscribed.set()
                    while not self._closing:
                        message = await pubsub.get_message(timeout=READ_BLOCK_MS / 1000)
                        if message is not None and message.get("type") == "message":
                            self._deliver(message.get("data"))
            except (redis.RedisError, OSError) as exc:
                if self.subscribed.is_set():
                    log.warning("cluster: queue notices from other nodes interrupted (%s); the ACD's timed retries "
                                "cover them until Redis is back", exc)
                self.subscribed.clear()
                await asyncio.sleep(RETRY_S)

    def _deliver(self, raw: Any) -> None:
        try:
            notice = json.loads(raw)
            node, agent = notice["node"], notice["agent"]
        except (ValueError, TypeError, KeyError):
            log.error("cluster: an unreadable notice on %s is skipped", QUEUE_CHANGED)
            return
        if node == self.node_id:
            return  # this node's ACD made the change itself
        for sink in list(self._sinks):
            try:
                sink(agent if isinstance(agent, str) else None)
            except Exception:
                log.exception("cluster: a queue notice's sink failed")


class RedisFailureLog:
    """The login throttle's failures, shared by the nodes (see :class:`voicebot.server.access.FailureLog`).

    While Redis is unreachable the node counts in its own memory instead, so a guesser is still slowed down."""

    def __init__(self, redis_url: str):
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5,
                                           decode_responses=True)
        self._fallback = MemoryFailureLog()
        self._lock = threading.Lock()
        self._warned = False

    def _try(self, fn: Callable[[redis.Redis], Any], fallback: Callable[[MemoryFailureLog], Any]) -> Any:
        try:
            result = fn(self._redis)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                if not self._warned:
                    self._warned = True
                    log.warning("cluster: Redis unreachable (%s): failed logins are counted on this node only", exc)
            return fallback(self._fallback)
        self._warned = False
        return result

    def add(self, keys: Sequence[str], at: float, window_s: float) -> None:
        def shared(r: redis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            member = f"{at:.6f}:{secrets.token_hex(4)}"  # two failures in the same microsecond are two
            for key in keys:
                name = f"{PREFIX}login:fail:{key}"
                pipe.zadd(name, {member: at})
                pipe.zremrangebyscore(name, "-inf", at - window_s)
                pipe.expire(name, int(window_s) + 1)
            pipe.execute()

        self._try(shared, lambda m: m.add(keys, at, window_s))

    def recent(self, key: str, since: float) -> list[float]:
        def shared(r: redis.Redis) -> list[float]:
            pairs: list[Any] = r.zrangebyscore(  # type: ignore[assignment]
                f"{PREFIX}login:fail:{key}", f"({since}", "+inf", withscores=True)
            return [float(score) for _member, score in pairs]

        result: list[float] = self._try(shared, lambda m: m.recent(key, since))
        return result

    def forget(self, key: str) -> None:
        self._try(lambda r: r.delete(f"{PREFIX}login:fail:{key}"), lambda m: m.forget(key))

    def known(self, user: str) -> Collection[str]:
        result: Collection[str] = self._try(lambda r: r.lrange(f"{PREFIX}login:known:{user}", 0, -1),
                                            lambda m: m.known(user))
        return result

    def remember(self, user: str, address: str, keep: int) -> None:
        def shared(r: redis.Redis) -> None:
            name = f"{PREFIX}login:known:{user}"
            pipe = r.pipeline(transaction=True)
            pipe.lrem(name, 0, address)
            pipe.lpush(name, address)
            pipe.ltrim(name, 0, keep - 1)
            pipe.execute()

        self._try(shared, lambda m: m.remember(user, address, keep))


class RedisAgentClaims:
    """Agents' owners shared by the nodes (:class:`telephony.queue.claims.AgentClaims`): the key
    ``voicebot:agent:ID`` holds ``NODE CALL TOKEN`` with a lease of ``lease_s`` that this node renews
    (:meth:`renew`, from the heartbeat) while it holds the agent; a node that dies stops renewing, and its agents
    come free within ``lease_s``. ``TOKEN`` comes from ``voicebot:agent-fence`` (INCR): a fencing token.

    While Redis is unreachable no new claim is granted (an agent is never rung by two nodes at once): the ACD counts
    the agent busy here and asks again every few seconds, so callers wait with their hold music until Redis is
    back. Claims this node held before keep going; when Redis is back :meth:`renew` writes a claim whose lease ran
    out meanwhile again, or logs that another node took the agent."""

    def __init__(self, redis_url: str, node_id: str, lease_s: float):
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.3, socket_connect_timeout=0.3,
                                           decode_responses=True)
        self.node_id = node_id
        self.lease_ms = int(lease_s * 1000)
        self.held: dict[str, Claim] = {}
        self._lock = threading.Lock()
        self._claim = self._redis.register_script(CLAIM)
        self._release = self._redis.register_script(RELEASE_AGENT)
        self._renew = self._redis.register_script(RENEW)

    def claim(self, agent_id: str, call_id: str) -> Claim | None:
        with self._lock:
            if agent_id in self.held:
                return self.held[agent_id]
        try:
            answer = self._claim(keys=[f"{PREFIX}agent:{agent_id}", f"{PREFIX}agent-fence"],
                                 args=[self.node_id, call_id, self.lease_ms])
        except (redis.RedisError, OSError) as exc:
            log.warning("cluster: Redis unreachable (%s): agent %s is not rung until their claim can be checked",
                        exc, agent_id)
            return None
        if answer is None:
            return None
        claim = Claim(agent_id, call_id, int(answer))
        with self._lock:
            self.held[agent_id] = claim
        return claim

    def release(self, agent_id: str) -> None:
        with self._lock:
            claim = self.held.pop(agent_id, None)
        if claim is not None:
            with contextlib.suppress(redis.RedisError, OSError):  # else its lease runs out
                self._release(keys=[f"{PREFIX}agent:{agent_id}", QUEUE_CHANGED],
                              args=[self._value(claim), _change(self.node_id, agent_id)])

    def renew(self) -> None:
        """Extend the leases of the agents this node holds (blocking: run it off the event loop)."""
        with self._lock:
            claims = list(self.held.values())
        for claim in claims:
            key = f"{PREFIX}agent:{claim.agent_id}"
            if self._renew(keys=[key], args=[self._value(claim), self.lease_ms]):
                continue
            # Its lease ran out while Redis was away: take it again unless another node has the agent now.
            if not self._redis.set(key, self._value(claim), nx=True, px=self.lease_ms):
                log.warning("cluster: agent %s's claim for call %s lapsed while Redis was away and %s holds the "
                            "agent now; this node's call goes on", claim.agent_id, claim.call_id, self._redis.get(key))

    def forget_node(self) -> int:
        """Give back every agent claimed under this node's id before it (re)started (blocking; call before the
        node registers): this process holds none of them. Returns how many."""
        freed = 0
        for key in self._redis.scan_iter(f"{PREFIX}agent:*"):
            value = self._redis.get(key)
            if isinstance(value, str) and value.split(" ")[0] == self.node_id:
                agent_id = key[len(f"{PREFIX}agent:"):]
                freed += int(self._release(keys=[key, QUEUE_CHANGED], args=[value, _change(self.node_id, agent_id)]))
        return freed

    def holders(self) -> dict[str, tuple[str, str, int]]:
        """Every claimed agent: (node, call, token), from Redis (for tests and the invariant checks)."""
        out = {}
        for key in self._redis.scan_iter(f"{PREFIX}agent:*"):
            value = self._redis.get(key)
            if isinstance(value, str):
                node, call, token = value.split(" ")
                out[str(key)[len(PREFIX) + len("agent:"):]] = (node, call, int(token))
        return out

    def _value(self, claim: Claim) -> str:
        return f"{self.node_id} {claim.call_id} {claim.token}"


@dataclasses.dataclass
class _Waiting:
    """One of this node's waiting callers, as written to Redis (``member`` empty: not yet)."""

    queue: str
    caller: str
    priority: int
    returned: bool
    since: float  # this node's clock, for while Redis is unreachable
    member: str = ""
    score: float = 0.0
    ringing: bool = False


class RedisQueueEntries:
    """Every node's waiting callers and the queues' counters (:class:`telephony.queue.entries.QueueEntries`).

    ``voicebot:queue:waiting`` ranks the entries; ``voicebot:queue:entry:CALL`` (caller, priority, ringing) has a
    lease of ``lease_s`` that this node renews (:meth:`renew`, from the heartbeat) while its caller waits. An entry
    whose lease ran out and whose node has not beaten for ``lost_after_s`` is removed by the first reader and
    counted ``abandoned`` and ``node_lost`` (its node died with the caller). Blocking calls with short timeouts,
    like :class:`RedisAgentClaims`; after a failure Redis is left alone for :data:`QUEUE_RETRY_S`, and meanwhile this
    node sees its own callers only, with writes kept and sent by the next :meth:`renew` that reaches Redis."""

    def __init__(self, redis_url: str, node_id: str, lease_s: float, lost_after_s: float):
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.3, socket_connect_timeout=0.3,
                                           decode_responses=True)
        self.node_id = node_id
        self.lease_ms = int(lease_s * 1000)
        self.lost_after_s = lost_after_s
        self._join = self._redis.register_script(JOIN)
        self._lock = threading.Lock()
        self._mine: dict[str, _Waiting] = {}
        self._unsent_leave: list[tuple[str, str]] = []  # (call, member) to remove once Redis answers
        self._unsent_counts: list[tuple[str, dict[str, float]]] = []
        self._counters: dict[str, dict[str, float]] = {}  # as last read, for while Redis is unreachable
        self._connected: dict[str, str] = {}  # this node's callers talking to an agent: call -> queue
        self._unsent_disconnect: list[tuple[str, str]] = []  # (call, queue) to remove once Redis answers
        self._down_until = 0.0
        self._warned = False

    def _ok(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException, what: str) -> None:
        self._down_until = time.monotonic() + QUEUE_RETRY_S
        if not self._warned:
            self._warned = True
            log.warning("cluster: Redis unreachable (%s): %s; the queue shows this node's callers only", exc, what)

    def _fine(self) -> None:
        if self._warned:
            self._warned = False
            log.info("cluster: Redis reachable again: the queue is shared again")

    def join(self, call_id: str, queue: str, caller: str | None, priority: int, returned: bool) -> None:
        entry = _Waiting(queue, caller or "", priority, returned, time.time())
        with self._lock:
            self._mine[call_id] = entry
        if self._ok():
            try:
                self._write(call_id, entry)
                self._fine()
            except (redis.RedisError, OSError) as exc:
                self._failed(exc, f"caller {call_id} waits in queue {queue} here only until it is back")

    def _write(self, call_id: str, entry: _Waiting) -> None:
        if not entry.member:
            member, raw = self._join(keys=[QUEUE_WAITING, QUEUE_ENTRY + call_id],
                                     args=[call_id, self.node_id, entry.queue, entry.priority,
                                           0 if entry.returned else 1, entry.caller, self.lease_ms])
            entry.member, entry.score = member, float(raw)
        else:  # again, in its place (its lease ran out while Redis was away)
            pipe = self._redis.pipeline(transaction=True)
            pipe.zadd(QUEUE_WAITING, {entry.member: entry.score})
            pipe.hset(QUEUE_ENTRY + call_id, mapping={"caller": entry.caller, "priority": entry.priority,
                                                      "ringing": "1" if entry.ringing else "0"})
            pipe.pexpire(QUEUE_ENTRY + call_id, self.lease_ms)
            pipe.execute()
        if entry.ringing:
            self._redis.hset(QUEUE_ENTRY + call_id, "ringing", "1")

    def ringing(self, call_id: str, ringing: bool) -> None:
        with self._lock:
            entry = self._mine.get(call_id)
            if entry is None:
                return
            entry.ringing = ringing
        if self._ok() and entry.member:
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.hset(QUEUE_ENTRY + call_id, "ringing", "1" if ringing else "0")
                # Others leave their agents for this caller only while nobody rings for it: they look again now.
                pipe.publish(QUEUE_CHANGED, _change(self.node_id, None))
                pipe.execute()
            except (redis.RedisError, OSError) as exc:
                self._failed(exc, "ringing state not shared")

    def leave(self, call_id: str) -> None:
        with self._lock:
            entry = self._mine.pop(call_id, None)
        if entry is None or not entry.member:
            return  # never reached Redis
        try:
            if not self._ok():
                raise redis.ConnectionError("Redis was unreachable a moment ago")
            self._remove(self._redis.pipeline(transaction=False), call_id, entry.member).execute()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc, f"caller {call_id} left the queue here first")
            with self._lock:
                self._unsent_leave.append((call_id, entry.member))

    def _remove(self, pipe: Any, call_id: str, member: str) -> Any:
        pipe.zrem(QUEUE_WAITING, member)
        pipe.delete(QUEUE_ENTRY + call_id)
        pipe.publish(QUEUE_CHANGED, _change(self.node_id, None))  # an agent left for this caller may be free now
        return pipe

    def forget_node(self) -> tuple[int, int]:
        """Remove what this node's id held in the shared queue before the node (re)started (blocking; call before
        it registers, while this process holds nothing): its callers talking to an agent leave
        ``queue:connected:*`` and its waiting callers ``queue:waiting``, counted ``abandoned`` and ``node_lost`` as
        a survivor counts a lost node's. Returns (talking, waiting) removed."""
        talking = 0
        for key in self._redis.scan_iter(QUEUE_CONNECTED + "*"):
            calls: dict[str, str] = self._redis.hgetall(key)  # type: ignore[assignment]
            mine = [call for call, node in calls.items() if node == self.node_id]
            if mine:
                talking += int(self._redis.hdel(key, *mine))  # type: ignore[arg-type]
        seconds, micros = self._redis.time()  # type: ignore[misc]
        now = float(seconds) + micros / 1e6
        waiting = 0
        members: list[str] = self._redis.zrange(QUEUE_WAITING, 0, -1)  # type: ignore[assignment]
        for member in members:
            call_id, node, queue, since = json.loads(member)
            if node != self.node_id or self._redis.zrem(QUEUE_WAITING, member) != 1:
                continue
            waiting += 1
            pipe = self._redis.pipeline(transaction=False)
            pipe.delete(QUEUE_ENTRY + call_id)
            self._add_counts(pipe, queue, {"abandoned": 1, "node_lost": 1,
                                           "abandon_wait_total": round(max(0.0, now - float(since)), 3)})
            pipe.publish(QUEUE_CHANGED, _change(self.node_id, None))
            pipe.execute()
        return talking, waiting

    def connected(self, call_id: str, queue: str, connected: bool) -> None:
        with self._lock:
            if connected:
                self._connected[call_id] = queue
            elif self._connected.pop(call_id, None) is None:
                return
        try:
            if not self._ok():
                raise redis.ConnectionError("Redis was unreachable a moment ago")
            if connected:
                self._redis.hset(QUEUE_CONNECTED + queue, call_id, self.node_id)
            else:
                self._redis.hdel(QUEUE_CONNECTED + queue, call_id)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc, "callers talking to agents are shared later")
            if not connected:
                with self._lock:
                    self._unsent_disconnect.append((call_id, queue))

    def connected_now(self, queue: str) -> int:
        if self._ok():
            try:
                talking: dict[str, str] = self._redis.hgetall(QUEUE_CONNECTED + queue)  # type: ignore[assignment]
                return len(self._alive(queue, talking))
            except (redis.RedisError, OSError) as exc:
                self._failed(exc, "other nodes' callers talking to agents not seen")
        with self._lock:
            return sum(1 for q in self._connected.values() if q == queue)

    def _alive(self, queue: str, talking: dict[str, str]) -> dict[str, str]:
        """The calls of ``talking`` (call -> node) whose node beats; a lost node's are removed."""
        nodes = set(talking.values()) - {self.node_id}
        if not nodes:
            return talking
        seconds, micros = self._redis.time()  # type: ignore[misc]
        now = float(seconds) + micros / 1e6
        pipe = self._redis.pipeline(transaction=False)
        for node in nodes:
            pipe.zscore(NODES, node)
        beats = dict(zip(nodes, pipe.execute(), strict=True))
        lost = {n for n, beat in beats.items() if beat is None or float(beat) <= now - self.lost_after_s}
        gone = [call for call, node in talking.items() if node in lost]
        if gone:
            self._redis.hdel(QUEUE_CONNECTED + queue, *gone)
        return {call: node for call, node in talking.items() if node not in lost}

    def count(self, queue: str, amounts: dict[str, float]) -> None:
        known = self._counters.setdefault(queue, dict.fromkeys(COUNTERS, 0.0))
        for name, value in amounts.items():
            known[name] = known.get(name, 0.0) + value
        try:
            if not self._ok():
                raise redis.ConnectionError("Redis was unreachable a moment ago")
            self._add_counts(self._redis.pipeline(transaction=False), queue, amounts).execute()
        except (redis.RedisError, OSError) as exc:
            self._failed(exc, "queue statistics are sent later")
            with self._lock:
                self._unsent_counts.append((queue, amounts))

    @staticmethod
    def _add_counts(pipe: Any, queue: str, amounts: dict[str, float]) -> Any:
        for name, value in amounts.items():
            if value:
                pipe.hincrbyfloat(QUEUE_STATS + queue, name, value)
        return pipe

    def counters(self, queue: str) -> dict[str, float]:
        if self._ok():
            try:
                stored: dict[str, str] = self._redis.hgetall(QUEUE_STATS + queue)  # type: ignore[assignment]
                self._counters[queue] = {name: float(stored.get(name, 0)) for name in COUNTERS}
            except (redis.RedisError, OSError) as exc:
                self._failed(exc, "queue statistics as last read")
        return dict(self._counters.get(queue) or dict.fromkeys(COUNTERS, 0.0))

    def waiting(self) -> list[QueueEntry]:
        if self._ok():
            try:
                return self._shared_waiting()
            except (redis.RedisError, OSError) as exc:
                self._failed(exc, "other nodes' callers not seen")
        now = time.time()
        with self._lock:
            mine = sorted(self._mine.items(), key=lambda item: (not item[1].returned, -item[1].priority,
                                                                item[1].since))
        return [QueueEntry(call, e.queue, self.node_id, e.caller or None, e.priority, round(now - e.since, 3),
                           e.ringing) for call, e in mine]

    def _shared_waiting(self) -> list[QueueEntry]:
        members: list[str] = self._redis.zrange(QUEUE_WAITING, 0, -1)  # type: ignore[assignment]
        if not members:
            self._fine()
            return []
        seconds, micros = self._redis.time()  # type: ignore[misc]
        now = float(seconds) + micros / 1e6
        parsed = [json.loads(m) for m in members]
        pipe = self._redis.pipeline(transaction=False)
        for call_id, *_rest in parsed:
            pipe.hgetall(QUEUE_ENTRY + call_id)
        details: list[dict[str, str]] = pipe.execute()
        out, lapsed = [], []
        for member, (call_id, node, queue, since), detail in zip(members, parsed, details, strict=True):
            if not detail:
                lapsed.append((member, node, queue, now - float(since)))
                continue
            out.append(QueueEntry(call_id, queue, node, detail.get("caller") or None, int(detail.get("priority", 0)),
                                  round(now - float(since), 3), detail.get("ringing") == "1"))
        if lapsed:
            self._sweep(lapsed, now)
        self._fine()
        return out

    def _sweep(self, lapsed: list[tuple[str, str, str, float]], now: float) -> None:
        """Entries whose lease ran out: counted abandoned (node_lost) once their node counts as lost; an entry of a
        node still beating is its own to write again (Redis was away longer than the lease)."""
        for member, node, queue, waited in lapsed:
            if node == self.node_id:
                continue
            beat = self._redis.zscore(NODES, node)
            if beat is not None and float(beat) > now - self.lost_after_s:
                continue
            if self._redis.zrem(QUEUE_WAITING, member) == 1:  # one reader counts it
                self._add_counts(self._redis.pipeline(transaction=False), queue,
                                 {"abandoned": 1, "node_lost": 1, "abandon_wait_total": round(waited, 3)}).execute()
                log.warning("cluster: caller %s waiting in %s on lost node %s counted abandoned (node_lost)",
                            json.loads(member)[0], queue, node)

    def sweep(self) -> None:
        """Count lost nodes' waiting callers now (blocking; the heartbeat calls it, any read does it too)."""
        self._shared_waiting()

    def renew(self) -> None:
        """Extend this node's entries' leases and write what could not be written while Redis was away
        (blocking: run it off the event loop). Raises the Redis error when it is still away."""
        with self._lock:
            mine = dict(self._mine)
            leaves, self._unsent_leave = self._unsent_leave, []
            counts, self._unsent_counts = self._unsent_counts, []
            talking = dict(self._connected)
            disconnects, self._unsent_disconnect = self._unsent_disconnect, []
        try:
            pipe = self._redis.pipeline(transaction=False)
            for call_id, member in leaves:
                self._remove(pipe, call_id, member)
            for queue, amounts in counts:
                self._add_counts(pipe, queue, amounts)
            for call_id, queue in disconnects:
                pipe.hdel(QUEUE_CONNECTED + queue, call_id)
            for call_id, queue in talking.items():  # again each beat: written while Redis was away, or lost with it
                pipe.hset(QUEUE_CONNECTED + queue, call_id, self.node_id)
            for call_id in mine:
                pipe.pexpire(QUEUE_ENTRY + call_id, self.lease_ms)
            answers = pipe.execute()
            with self._lock:  # a call that stopped talking meanwhile must not stay written above
                ended = [(call, queue) for call, queue in talking.items() if call not in self._connected]
            if ended:
                for call_id, queue in ended:
                    self._redis.hdel(QUEUE_CONNECTED + queue, call_id)
            renewed = answers[len(answers) - len(mine):]
            for (call_id, entry), alive in zip(mine.items(), renewed, strict=True):
                if not alive and self._mine.get(call_id) is entry:
                    self._write(call_id, entry)
        except (redis.RedisError, OSError):
            with self._lock:
                self._unsent_leave[:0] = leaves
                self._unsent_counts[:0] = counts
                self._unsent_disconnect[:0] = disconnects
            raise
        self._down_until = 0.0
        self._fine()


class NodeWatch:
    """This node's heartbeat, and the closing of lost nodes' calls (see the module docstring)."""

    def __init__(self, redis_url: str, node_id: str, store: CallStore, *, heartbeat_s: float,
                 lost_after_s: float, claims: RedisAgentClaims | None = None,
                 queued_of: Callable[[str], list[TransferResult]] | None = None,
                 transfers: TransferStore | None = None, entries: RedisQueueEntries | None = None):
        self.node_id = node_id
        # A lost node's callers waiting for an agent (as this node's live calls saw them), recorded in `transfers`
        # as hand-offs that ended `node_lost`: the queue's history keeps them.
        self.queued_of = queued_of
        self.transfers = transfers
        self.claims = claims  # their leases are renewed with each beat
        self.entries = entries  # this node's waiting callers: renewed with each beat, lost nodes' counted
        self.store = store
        self.heartbeat_s = heartbeat_s
        self.lost_after_s = lost_after_s
        # More leases renewed with each beat (blocking; run off the loop): e.g. the agent pages held here.
        self.renewals: list[Callable[[], None]] = []
        self._redis = _client(redis_url)
        self._release = self._redis.register_script(RELEASE)
        self._task: asyncio.Task | None = None
        self.lost: list[tuple[str, int]] = []  # (node, calls closed) this node has handled, oldest first
        self._alive = True
        self._beating_since: float | None = None  # Redis time of the first beat since Redis was last reachable
        self._closing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._beat_forever(), name="cluster-heartbeat")

    async def close(self) -> None:
        self._closing = True  # see EventRelay.close
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()

    async def _beat_forever(self) -> None:
        while not self._closing:
            try:
                await self.beat()
                if not self._alive:
                    self._alive = True
                    log.info("cluster: Redis reachable again, heartbeats go on")
            except (redis.RedisError, OSError) as exc:
                if self._alive:
                    self._alive = False
                    log.warning("cluster: heartbeat failed (%s); retrying", exc)
            await asyncio.sleep(self.heartbeat_s)

    async def _now(self) -> float:
        # Redis's clock, one for all nodes (theirs may differ).
        seconds, micros = await self._redis.time()
        return float(seconds) + micros / 1e6

    async def beat(self) -> None:
        """Tell the others this node lives; close the calls of nodes silent too long (one survivor does)."""
        try:
            now = await self._now()
            await self._redis.zadd(NODES, {self.node_id: now})
        except (redis.RedisError, OSError):
            self._beating_since = None
            raise
        if self.claims is not None:
            await asyncio.to_thread(self.claims.renew)
        if self.entries is not None:
            await asyncio.to_thread(self.entries.renew)
        for renew in list(self.renewals):
            await asyncio.to_thread(renew)
        if self._beating_since is None:
            self._beating_since = now
        if now - self._beating_since < self.lost_after_s:
            # Just (re)connected: the others may have been cut off from Redis too; give them time to beat.
            return
        if self.entries is not None:
            await asyncio.to_thread(self.entries.sweep)
        silent: list[Any] = await self._redis.zrangebyscore(NODES, "-inf", now - self.lost_after_s)
        for node in silent:
            if node != self.node_id:
                await self._take_over(str(node), now)

    async def _take_over(self, node: str, now: float) -> None:
        lease, token = f"{PREFIX}lost:{node}", f"{self.node_id}:{secrets.token_hex(8)}"
        if not await self._redis.set(lease, token, nx=True, px=LOST_LEASE_MS):
            return  # another survivor is on it
        try:
            # The node may have come back since: only a node still silent is declared lost.
            score = await self._redis.zscore(NODES, node)
            if score is None or score > now - self.lost_after_s:
                return
            if self.queued_of is not None and self.transfers is not None:
                for result in self.queued_of(node):
                    await asyncio.to_thread(self.transfers.add, result, correct_call=False)
            closed = await asyncio.to_thread(self.store.close_stale, node, "node_lost", "node_lost")
            await self._redis.zrem(NODES, node)  # a node that starts again beats again
            self.lost.append((node, closed))
            log.warning("cluster: node %s silent for %.0f s: closed its %d live call(s) as node_lost", node,
                        now - score, closed)
        except Exception:  # the database is down: the lease is given back and the next beat tries again
            log.exception("cluster: closing the calls of lost node %s failed; retrying", node)
        finally:
            with contextlib.suppress(redis.RedisError, OSError):
                await self._release(keys=[lease], args=[token])


class ClusterState:
    """Everything a node shares through Redis, started and stopped with the server."""

    def __init__(self, bus: EventBus, store: CallStore, redis_url: str, node_id: str, *, heartbeat_s: float,
                 lost_after_s: float, live: LiveCalls | None = None):
        self.events = EventRelay(bus, redis_url, node_id)
        self.live = live
        # An agent's lease outlives a few missed beats, and runs out about when the node counts as lost.
        self.agents = RedisAgentClaims(redis_url, node_id, lease_s=lost_after_s)
        self.queue = RedisQueueEntries(redis_url, node_id, lease_s=lost_after_s, lost_after_s=lost_after_s)
        self.queue_changes = QueueChanges(redis_url, node_id)  # add the ACD's runner.recheck as a sink
        self.nodes = NodeWatch(redis_url, node_id, store, heartbeat_s=heartbeat_s, lost_after_s=lost_after_s,
                               claims=self.agents, queued_of=self.queued_of if live is not None else None,
                               transfers=TransferStore(store.engine), entries=self.queue)
        self.store = store

    def queued_of(self, node: str) -> list[TransferResult]:
        """The callers ``node`` had waiting for an agent, as hand-offs ended ``node_lost`` (from the live calls)."""
        if self.live is None:
            return []
        now = time.time()
        return [TransferResult(call_id=c.id, outcome="node_lost", queue=c.queue,
                               wait_s=max(0.0, now - c.queued_at) if c.queued_at is not None else 0.0)
                for c in self.live.calls.values() if c.node == node and c.state == "queued"]

    async def start(self) -> None:
        await self.events.start()
        await self.queue_changes.start()
        # This node's calls from before a restart: closed now that the others hear of it (call.ended).
        try:
            closed = await asyncio.to_thread(self.store.close_stale)
        except Exception:  # the database is down: they stay open until this node restarts again
            log.exception("cluster: closing this node's call records left open before a restart failed")
        else:
            if closed:
                log.info("cluster: closed %d call record(s) this node left open before it restarted", closed)
        await self.forget_leftovers()
        await self.nodes.start()

    async def forget_leftovers(self) -> None:
        """Before the node registers: what its id held in the shared queue before a restart (callers talking to an
        agent or waiting, agents' claims) is removed, so the counts do not stay inflated. Redis being down is
        logged, not fatal (the leftovers stay as before: until the keys expire or are swept)."""
        try:
            talking, waiting = await asyncio.to_thread(self.queue.forget_node)
            agents = await asyncio.to_thread(self.agents.forget_node)
        except (redis.RedisError, OSError) as exc:
            log.warning("cluster: Redis unreachable (%s): what this node held before it restarted stays", exc)
            return
        if talking or waiting or agents:
            log.info("cluster: removed what this node held before it restarted: %d caller(s) talking to an agent, "
                     "%d waiting (counted abandoned, node_lost), %d agent claim(s)", talking, waiting, agents)

    async def close(self) -> None:
        await self.nodes.close()
        await self.queue_changes.close()
        await self.events.close()

