"""What the nodes of a cluster share through Redis (``cluster.redis_url``): live events, failed logins, heartbeats.

- :class:`EventRelay` appends this node's call events to the stream ``voicebot:events`` and feeds the other
  nodes' into the local :class:`~voicebot.events.EventBus`, so every node's live calls (and dashboards) see every
  node's calls. A stream, not pub/sub: a node that starts, or whose Redis connection was lost, reads on from
  where it was and misses nothing (events wait in a local outbox while Redis is down).
- :class:`RedisFailureLog` keeps the login throttle's failed attempts in sorted sets every node counts.
- :class:`NodeWatch` beats ``voicebot:nodes`` every ``cluster.heartbeat_s``; when a node is silent for
  ``cluster.node_lost_after_s`` one survivor (the one that takes the lease ``voicebot:lost:NODE``) closes that
  node's open call records with outcome ``node_lost``.

Keys (all under ``voicebot:``): ``events`` (stream), ``nodes`` (sorted set node -> last beat, Redis time),
``lost:NODE`` (lease), ``login:fail:KEY`` (sorted set), ``login:known:USER`` (list).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Callable, Collection, Sequence
from typing import Any

import redis
import redis.asyncio as aredis

from voicebot.events import Event, EventBus
from voicebot.server.access import MemoryFailureLog
from voicebot.storage import CallStore

log = logging.getLogger(__name__)

PREFIX = "voicebot:"
EVENTS = PREFIX + "events"
NODES = PREFIX + "nodes"
# What a node publishes for the others: what happens on its calls. Its live-call summaries and alerts
# (call.updated, alert) every node derives itself from these; queue snapshots are per node (its own ACD).
SHARED_EVENTS = frozenset({"call.started", "turn", "turn.updated", "call.state", "handoff", "call.ended"})
STREAM_MAXLEN = 50_000  # events kept (approximately) for nodes that start or reconnect
OUTBOX_MAX = 50_000  # events waiting while Redis is down; older ones are dropped (logged)
RETRY_S = 0.5  # pause before talking to Redis again after an error
READ_BLOCK_MS = 1000
LOST_LEASE_MS = 60_000  # how long the survivor closing a lost node's calls holds the lease

# The lease is released only by its holder (its token), never a later holder's.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


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

    async def start(self) -> None:
        """Start sharing (call on the bus's loop): the stream so far is replayed into the bus first, when Redis
        answers; while it does not, the node goes on alone and catches up later."""
        self.bus.add_listener(self._on_local)
        self._tasks = [asyncio.create_task(self._read_forever(), name="cluster-events-in"),
                       asyncio.create_task(self._write_forever(), name="cluster-events-out")]

    async def close(self) -> None:
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
        while True:
            await self._pending.wait()
            self._pending.clear()
            while self._outbox:
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
        while True:
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


class NodeWatch:
    """This node's heartbeat, and the closing of lost nodes' calls (see the module docstring)."""

    def __init__(self, redis_url: str, node_id: str, store: CallStore, *, heartbeat_s: float,
                 lost_after_s: float):
        self.node_id = node_id
        self.store = store
        self.heartbeat_s = heartbeat_s
        self.lost_after_s = lost_after_s
        self._redis = _client(redis_url)
        self._release = self._redis.register_script(RELEASE)
        self._task: asyncio.Task | None = None
        self.lost: list[tuple[str, int]] = []  # (node, calls closed) this node has handled, oldest first
        self._alive = True
        self._beating_since: float | None = None  # Redis time of the first beat since Redis was last reachable

    async def start(self) -> None:
        self._task = asyncio.create_task(self._beat_forever(), name="cluster-heartbeat")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._redis.aclose()

    async def _beat_forever(self) -> None:
        while True:
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
        if self._beating_since is None:
            self._beating_since = now
        if now - self._beating_since < self.lost_after_s:
            # Just (re)connected: the others may have been cut off from Redis too; give them time to beat.
            return
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
                 lost_after_s: float):
        self.events = EventRelay(bus, redis_url, node_id)
        self.nodes = NodeWatch(redis_url, node_id, store, heartbeat_s=heartbeat_s, lost_after_s=lost_after_s)
        self.store = store

    async def start(self) -> None:
        await self.events.start()
        # This node's calls from before a restart: closed now that the others hear of it (call.ended).
        try:
            closed = await asyncio.to_thread(self.store.close_stale)
        except Exception:  # the database is down: they stay open until this node restarts again
            log.exception("cluster: closing this node's call records left open before a restart failed")
        else:
            if closed:
                log.info("cluster: closed %d call record(s) this node left open before it restarted", closed)
        await self.nodes.start()

    async def close(self) -> None:
        await self.nodes.close()
        await self.events.close()

