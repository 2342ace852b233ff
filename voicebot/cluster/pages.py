"""Agent pages on other nodes: a caller on node A reaches an agent whose page (``contact: webrtc``) is connected
to node B.

- :class:`PageRegistry` keeps which node holds which agent page in Redis: ``voicebot:page:AGENT`` holds the node's
  id, on a lease its node renews with its heartbeat and deletes when the page disconnects (a dead node's pages lapse
  within ``cluster.node_lost_after_s``); ``voicebot:node-sip`` maps each node to the SIP address other nodes dial it
  on. Neither holds personal data: agent ids, node ids and addresses only.
- :class:`ClusterPhones` is the queue's phone book of agent pages on node A: a page connected here rings here; a
  page on node B is dialled as ``sip:page-AGENT@NODE_B`` over an internal SIP leg, so the whisper, the bridge,
  listen-in and the call record stay on the caller's node, exactly as for a SIP agent phone. The page's answer is
  the SIP answer (200), its decline a 603, a busy page 486, a page that went away 480.
- :class:`PageRelay` takes those INVITEs on node B: only from a cluster node's SIP address (anything else 403,
  logged), only for a page connected here (else 404); it rings the page as a local call does and, once it answers,
  relays audio between the SIP leg and the page's WebRTC leg until either side hangs up. The page's Accept /
  Decline of a queue with ``agent_confirm`` reach node A as the agent keys 1 / 2 (RFC 4733), which its queue reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import redis

from telephony.bridge import Bridge
from telephony.sip.ua import DialError
from voicebot.cluster.redis_state import NODES, PREFIX, RELEASE, RENEW
from voicebot.transfer.ending import HANGUPS, CallEnding

if TYPE_CHECKING:
    from telephony.call import CallLeg
    from telephony.config import SipConfig
    from telephony.leg import Leg
    from telephony.sip.ua import UserAgent
    from voicebot.cluster.redis_state import ClusterState
    from voicebot.config import Settings
    from voicebot.server.agent_phone import AgentPhones
    from voicebot.transfer import TransferService

log = logging.getLogger(__name__)

PAGES = PREFIX + "page:"
NODE_SIP = PREFIX + "node-sip"
PAGE_USER = "page-"
# Node A's queue ends the ring (CANCEL) when its own agent timeout is over; this only bounds a leg nobody cancels.
PAGE_RING_LIMIT_S = 300.0
_AGENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")  # what may stand in a SIP URI's user part unescaped

OfferListener = Callable[[str, str, str, CallEnding | None], None]
"""``fn(event, call_id, agent_id, ending)`` with ``ringing``, ``answered`` and ``ended`` of a page call from
another node (``call_id``: the caller's call on that node, as its claim of the agent names it); ``ending``: why a
page call the agent answered ended (with ``ended``), else None."""


def page_uri(agent_id: str, address: str) -> str:
    """The internal SIP URI of ``agent_id``'s page on the node at ``address`` (host:port). Raises DialError 400
    for an agent id that cannot be a SIP user."""
    if not _AGENT_ID.fullmatch(agent_id):
        raise DialError(400, f"agent id {agent_id!r} cannot be dialled on another node")
    return f"sip:{PAGE_USER}{agent_id}@{address}"


def page_agent(dialled: str | None) -> str | None:
    """The agent whose page an INVITE to the user ``dialled`` is for, or None if it is not a page call."""
    if dialled and dialled.startswith(PAGE_USER):
        return dialled[len(PAGE_USER):]
    return None


class PageRegistry:
    """Which node holds which agent page, shared through Redis (blocking calls with short timeouts: run them off
    the event loop). ``sip_address`` is where other nodes dial this node (host:port), None without SIP."""

    def __init__(self, redis_url: str, node_id: str, sip_address: str | None, lease_s: float):
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5,
                                           decode_responses=True)
        self.node_id = node_id
        self.sip_address = sip_address
        self.lease_ms = int(lease_s * 1000)
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._release = self._redis.register_script(RELEASE)
        self._renew = self._redis.register_script(RENEW)

    def put(self, agent_id: str) -> None:
        """``agent_id``'s page connected here (a later connection on another node takes the entry over)."""
        with self._lock:
            self.held.add(agent_id)
        try:
            self._redis.set(PAGES + agent_id, self.node_id, px=self.lease_ms)
        except (redis.RedisError, OSError) as exc:  # the next heartbeat that reaches Redis writes it
            log.warning("cluster: Redis unreachable (%s): %s's page is rung from other nodes once it is back",
                        exc, agent_id)

    def drop(self, agent_id: str) -> None:
        """``agent_id``'s page here disconnected: other nodes no longer dial it (unless it is on another node)."""
        with self._lock:
            self.held.discard(agent_id)
        with contextlib.suppress(redis.RedisError, OSError):  # else its lease runs out
            self._release(keys=[PAGES + agent_id], args=[self.node_id])

    def renew(self) -> None:
        """Say where this node is reached and extend the leases of its pages (the heartbeat calls it). Raises the
        Redis error when Redis is unreachable."""
        with self._lock:
            held = list(self.held)
        if self.sip_address:
            self._redis.hset(NODE_SIP, self.node_id, self.sip_address)
        for agent_id in held:
            key = PAGES + agent_id
            if not self._renew(keys=[key], args=[self.node_id, self.lease_ms]):
                # Lapsed while Redis was away: written again unless the agent connected a page on another node.
                self._redis.set(key, self.node_id, nx=True, px=self.lease_ms)

    def where(self, agent_id: str) -> tuple[str, str] | None:
        """(node, SIP address) of the live node holding ``agent_id``'s page; None if no node does."""
        node = self._redis.get(PAGES + agent_id)
        if not isinstance(node, str) or self._redis.zscore(NODES, node) is None:
            return None
        address = self._redis.hget(NODE_SIP, node)
        return (node, address) if isinstance(address, str) and address else None

    def node_addresses(self) -> set[str]:
        """The SIP addresses (host:port) of the nodes that beat."""
        alive = set(self._redis.zrange(NODES, 0, -1))  # type: ignore[arg-type]
        known: dict[str, str] = self._redis.hgetall(NODE_SIP)  # type: ignore[assignment]
        return {address for node, address in known.items() if node in alive}

    def call_of(self, agent_id: str) -> str | None:
        """The call the node that claimed ``agent_id`` rings them for (the queue's claim), or None."""
        value = self._redis.get(f"{PREFIX}agent:{agent_id}")
        parts = value.split(" ") if isinstance(value, str) else []
        return parts[1] if len(parts) == 3 else None


class ClusterPhones:
    """Agent pages as the queue rings them (``voicebot.transfer.service.AgentPhoneBook``): here if the page is
    connected to this node, else over SIP on the node that holds it."""

    def __init__(self, local: AgentPhones, registry: PageRegistry, ua: Callable[[], UserAgent | None]):
        self.local = local
        self.registry = registry
        self.ua = ua

    async def ring(self, agent_id: str, call_id: str, timeout: float) -> Leg:
        """The answered leg to ``agent_id``'s page (a WebRTC leg here, a SIP leg to another node); raises
        DialError as :meth:`voicebot.server.agent_phone.AgentPhones.ring` does."""
        if self.local.get(agent_id) is not None:
            return await self.local.ring(agent_id, call_id, timeout)
        try:
            found = await asyncio.to_thread(self.registry.where, agent_id)
        except (redis.RedisError, OSError) as exc:
            raise DialError(503, f"where {agent_id}'s page is cannot be read: {exc}") from None
        if found is None or found[0] == self.registry.node_id:
            raise DialError(480, "the agent page is not connected as a phone on any node")
        ua = self.ua()
        if ua is None:
            raise DialError(503, "SIP is off: agent pages on other nodes cannot be rung")
        node, address = found
        log.info("call %s: ringing %s's page on node %s", call_id, agent_id, node)
        return await ua.dial(page_uri(agent_id, address), caller="voicebot", ring_timeout=timeout)


class PageRelay:
    """Page calls from other nodes (see the module docstring): :meth:`handle` each inbound SIP leg dialled to
    ``page-AGENT``."""

    def __init__(self, phones: AgentPhones, registry: PageRegistry):
        self.phones = phones
        self.registry = registry
        self.listeners: list[OfferListener] = []
        self.legs: dict[str, CallLeg] = {}  # agent id -> the SIP leg of the page call they answered
        self.refused = 0  # INVITEs from outside the cluster

    def add_listener(self, listener: OfferListener) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: OfferListener) -> None:
        self.listeners.remove(listener)

    async def handle(self, leg: CallLeg) -> None:
        """Ring the page the ringing ``leg`` is for and relay it once answered; reject it when it may not or
        cannot be (403 not from a cluster node, 404 no such page here, the page's refusal otherwise)."""
        agent_id = page_agent(leg.dialled) or ""
        source = f"{leg.peer.host}:{leg.peer.port}"
        try:
            nodes = await asyncio.to_thread(self.registry.node_addresses)
        except (redis.RedisError, OSError) as exc:
            log.warning("page call %s for %s from %s: the cluster's nodes cannot be read (%s): 503",
                        leg.call_id, agent_id, source, exc)
            await leg.reject(503, "Service Unavailable")
            return
        if source not in nodes:
            self.refused += 1
            log.warning("page call %s for %s refused (403): %s is not a node of this cluster", leg.call_id,
                        agent_id, source)
            await leg.reject(403, "Forbidden")
            return
        phone = self.phones.get(agent_id)
        if phone is None:
            log.info("page call %s from %s: %s's page is not connected to this node (404)", leg.call_id, source,
                     agent_id)
            await leg.reject(404, "Not Found")
            return
        call_id = await asyncio.to_thread(self._call_of, agent_id) or leg.call_id
        self._notify("ringing", call_id, agent_id)
        ending: list[CallEnding] = []
        try:
            await self._relay(leg, phone.ring, agent_id, call_id, ending)
        finally:
            self._notify("ended", call_id, agent_id, ending[0] if ending else None)

    async def _relay(self, leg: CallLeg, ring: Callable[[str, float], Any], agent_id: str, call_id: str,
                     ending: list[CallEnding]) -> None:
        ringing = asyncio.ensure_future(ring(call_id, PAGE_RING_LIMIT_S))
        gone = asyncio.ensure_future(leg.ended.wait())
        try:
            await asyncio.wait([ringing, gone], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not ringing.done():  # node A gave up (CANCEL): the page stops ringing
            ringing.cancel()
            await asyncio.gather(ringing, return_exceptions=True)
            return
        try:
            web = ringing.result()
        except DialError as exc:
            log.info("page call %s: %s's page did not take it: %s %s", leg.call_id, agent_id, exc.status, exc.reason)
            await leg.reject(exc.status, exc.reason)
            return
        await leg.answer()
        if leg.state != "answered":
            await web.hangup()
            return
        self.legs[agent_id] = leg
        self._notify("answered", call_id, agent_id)
        try:
            await Bridge(leg, web).wait()
        finally:
            if self.legs.get(agent_id) is leg:
                del self.legs[agent_id]
            ending.append(page_call_ending(leg, web))

    def key(self, agent_id: str, key: str) -> bool:
        """Send ``key`` (the agent's 1 accept / 2 decline) to the node whose call the page answered; False if
        the agent has no page call from another node."""
        leg = self.legs.get(agent_id)
        if leg is None or leg.state != "answered" or not leg.can_send_dtmf:
            return False
        leg.send_dtmf(key)
        return True

    def _call_of(self, agent_id: str) -> str | None:
        try:
            return self.registry.call_of(agent_id)
        except (redis.RedisError, OSError):
            return None

    def _notify(self, event: str, call_id: str, agent_id: str, ending: CallEnding | None = None) -> None:
        for listener in list(self.listeners):
            try:
                listener(event, call_id, agent_id, ending)
            except Exception:
                log.exception("page call listener failed")


def page_call_ending(node_leg: Leg, page: Leg) -> CallEnding:
    """Why a page call ended, seen from the page's node: the agent hung up, the caller's node ended it (their
    hang-up or its queue's), or the line to that node dropped (no media: the node may have died)."""
    if page.state == "ended" and page.end_reason not in HANGUPS:
        return CallEnding("agent_lost", "Your phone's line dropped.")
    if page.state == "ended" and node_leg.state != "ended" or node_leg.end_reason == "local hangup":
        return CallEnding("agent_hangup", "You hung up.")
    if node_leg.end_reason == "remote hangup":
        return CallEnding("ended", "The call ended.")
    why = node_leg.end_reason or "no reason given"
    return CallEnding("caller_lost", f"The line to the caller's node dropped ({why}): that node may be down.")


def sip_address(sip: SipConfig) -> str | None:
    """Where the other nodes dial this node (host:port of its UDP listener, with ``public_address``'s host if
    set); None without SIP over UDP, or on a wildcard address nobody can dial."""
    if not sip.enabled or not sip.listen_udp:
        return None
    host, _, port = sip.listen_udp.rpartition(":")
    host = sip.public_address or host
    if host in ("", "0.0.0.0", "::", "[::]"):
        log.warning("cluster: sip.listen_udp %s is a wildcard address and sip.public_address is not set: agent "
                    "pages on this node cannot be rung from other nodes", sip.listen_udp)
        return None
    return f"{host}:{port}"


def share_pages(settings: Settings, cluster: ClusterState, phones: AgentPhones,
                transfer: TransferService) -> PageRelay:
    """Make ``phones`` (this node's agent pages) reachable from the other nodes and theirs from this one's queue:
    the registry kept up to date and renewed with the heartbeat, ``transfer`` ringing pages anywhere and taking
    the other nodes' page calls (call before ``transfer.start()``)."""
    registry = PageRegistry(settings.cluster.redis_url, settings.cluster.node_id, sip_address(settings.sip),
                            lease_s=settings.cluster.node_lost_after_s)
    writes = ThreadPoolExecutor(1, thread_name_prefix="cluster-pages")  # one at a time: in the pages' order
    loop = asyncio.get_running_loop()

    def on_phone(agent_id: str, connected: bool) -> None:
        loop.run_in_executor(writes, registry.put if connected else registry.drop, agent_id)

    phones.add_listener(on_phone)
    cluster.nodes.renewals.append(registry.renew)
    relay = PageRelay(phones, registry)
    relay.add_listener(transfer.remote_offer)
    transfer.pages = relay
    transfer.use_phones(ClusterPhones(phones, registry, lambda: transfer.ua))
    return relay
