"""The SIP user agent: one per process, serving and placing calls over UDP and TCP.

A facade over the layers (as PJSUA over PJSIP): the :class:`Endpoint` (transports, transactions, dispatch,
access control), the :class:`InviteLayer` (the INVITE sessions) and one :class:`Registration` per trunk that
registers. It pairs every INVITE session with an :class:`RtpSession` in a :class:`CallLeg` and hands accepted
inbound calls to the application's ``on_call`` handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from telephony.access import AccessPolicy
from telephony.call import CallError, CallLeg
from telephony.config import SipConfig, TrunkConfig
from telephony.rtp.session import RtpSession
from telephony.sip.endpoint import Endpoint
from telephony.sip.invite import DialError, IncomingCall, InviteLayer, InviteSession
from telephony.sip.message import SipUri
from telephony.sip.registration import Registration
from telephony.sip.transaction import Timers
from telephony.sip.transport import Peer, SipTransport

__all__ = ["CallHandler", "DialError", "UserAgent"]

log = logging.getLogger(__name__)

CallHandler = Callable[[CallLeg], Awaitable[None]]


class UserAgent:
    """Listens for SIP, answers OPTIONS, hands accepted inbound calls to ``on_call``, places outbound calls.

    ``on_call(leg)`` runs as its own task per call; it should answer (or reject) the leg and then drive it
    until it ends. Without a handler, calls are rejected with 480.
    """

    def __init__(self, config: SipConfig | None = None, trunks: list[TrunkConfig] | None = None,
                 on_call: CallHandler | None = None, timers: Timers | None = None):
        self.config = config or SipConfig()
        self.trunks = trunks or []
        self.on_call = on_call
        self.endpoint = Endpoint(self.config, self.trunks, timers)
        self.invites = InviteLayer(self.endpoint, self._incoming)
        self.registrations: list[Registration] = []

    @property
    def calls(self) -> dict[str, CallLeg]:
        """The calls in progress by Call-ID."""
        return {cid: s.owner for cid, s in self.invites.sessions.items() if isinstance(s.owner, CallLeg)}

    @property
    def transport(self) -> SipTransport:
        return self.endpoint.transport

    @property
    def access(self) -> AccessPolicy:
        return self.endpoint.access

    @property
    def timers(self) -> Timers:
        return self.endpoint.timers

    @property
    def rejected(self) -> int:
        """Requests refused with 403 by access control."""
        return self.endpoint.rejected

    @property
    def malformed(self) -> int:
        """Messages that did not parse."""
        return self.endpoint.malformed

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the configured UDP/TCP listeners and start trunk registrations. Raises OSError if a port is
        taken."""
        await self.endpoint.start()
        for trunk in self.trunks:
            if trunk.register_:
                reg = Registration(self.endpoint, trunk)
                self.registrations.append(reg)
                reg.start()

    async def stop(self) -> None:
        """Hang up every call, unregister, close sockets."""
        for reg in self.registrations:
            await reg.stop()
        for leg in list(self.calls.values()):
            with contextlib.suppress(TimeoutError, CallError):
                await asyncio.wait_for(leg.hangup(), 2)
        await self.endpoint.close()

    def trunk(self, name: str) -> TrunkConfig:
        for t in self.trunks:
            if t.name == name:
                return t
        raise KeyError(f"no trunk named {name!r} (configured: {', '.join(t.name for t in self.trunks) or 'none'})")

    def proxied_trunk_for(self, uri: str) -> TrunkConfig | None:
        """The trunk reached through a proxy (``outbound_proxy``) whose address ``uri`` names, if any."""
        try:
            target = SipUri.parse(uri)
        except ValueError:
            return None
        return next((t for t in self.trunks if t.outbound_proxy is not None and t.host == target.host
                     and (target.port or t.port) == t.port), None)

    # --- calls ---------------------------------------------------------------------------------------------
    def _rtp(self, peer: Peer) -> RtpSession:
        # Media is accepted only from where the SDP (or, behind NAT, the signalling) says the peer is.
        return RtpSession(jitter_prefetch=self.config.jitter_buffer_ms // 20, latching=self.config.rtp_latching,
                          signalling_host=peer.host, no_media_timeout_s=self.config.no_media_timeout_s)

    def _incoming(self, session: InviteSession, call: IncomingCall) -> None:
        leg = CallLeg(session, self._rtp(session.peer), caller=call.caller, caller_name=call.caller_name,
                      dialled=call.dialled,
                      trunk=call.trunk, route=call.route)
        self.endpoint.spawn(self._run_inbound(leg))

    async def _run_inbound(self, leg: CallLeg) -> None:
        leg.session.srtp = leg.trunk.srtp if leg.trunk else self.config.srtp
        try:
            await leg.rtp.open(self.endpoint.bind_host(), self.config.rtp_port_min, self.config.rtp_port_max)
        except OSError as exc:
            log.error("call %s: %s", leg.call_id, exc)
            await leg.session.reject(503, extra=[("Retry-After", "5")], end_reason="no RTP port")
            return
        if not await leg.session.ring(self.endpoint.local_host(leg.peer), leg.rtp.local_port,
                                      tuple(self.config.codecs)):
            return
        if self.on_call is None:
            await leg.reject(480, "No Application")
            return
        try:
            await self.on_call(leg)
        except Exception:
            log.exception("call %s: call handler failed", leg.call_id)
            if leg.state == "ringing":
                await leg.reject(500)
            elif leg.state == "answered":
                await leg.hangup()
            return
        if leg.state == "ringing":
            await leg.reject(480, "Temporarily Unavailable")

    async def dial(self, uri: str, trunk: TrunkConfig | None = None, caller: str = "voicebot",
                   ring_timeout: float | None = None) -> CallLeg:
        """Call ``uri`` (directly, or through ``trunk``) and return the answered leg.

        Without ``trunk``, a call to the address of a trunk reached through a proxy (a cluster node's trunks, behind
        the SIP front) goes through that trunk, so the trunk sees the front's address.

        Raises DialError with the SIP status if the call is refused, not answered in ``ring_timeout``
        (408 after CANCEL) or the address is unusable.
        """
        if trunk is None:
            trunk = self.proxied_trunk_for(uri)
        target, peer = await self.invites.target(uri, trunk)
        rtp = self._rtp(peer)
        try:
            await rtp.open(self.endpoint.bind_host(), self.config.rtp_port_min, self.config.rtp_port_max)
        except OSError as exc:
            raise DialError(503, str(exc)) from None
        from_user = (trunk.username if trunk and trunk.username else caller)
        session, from_hdr = self.invites.outgoing(
            peer, from_user, trunk.host if trunk else self.endpoint.local_host(peer))
        leg = CallLeg(session, rtp, caller=from_user, caller_name="", dialled=target.user, trunk=trunk)
        session.srtp = trunk.srtp if trunk else self.config.srtp
        await session.invite(uri, from_hdr, rtp.local_port, trunk, ring_timeout or self.config.ring_timeout_s)
        return leg
