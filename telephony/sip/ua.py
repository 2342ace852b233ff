"""The SIP user agent: one per process, serving and placing calls over UDP and TCP.

It routes every message: retransmissions to their transaction, in-dialog requests to their :class:`CallLeg`,
new INVITEs through access control to the application's ``on_call`` handler. Malformed or hostile input is
answered with the matching 4xx or dropped, and logged; it never reaches a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from telephony.access import AccessPolicy, RateLimiter
from telephony.call import CallError, CallLeg
from telephony.config import SipConfig, TrunkConfig, split_hostport
from telephony.rtp.session import RtpSession
from telephony.sdp import AudioDescription, SdpError, make_offer
from telephony.sip.auth import authorization
from telephony.sip.dialog import Dialog
from telephony.sip.message import (
    Address,
    Headers,
    SipParseError,
    SipRequest,
    SipResponse,
    SipUri,
    Via,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
    split_list,
)
from telephony.sip.transaction import ClientTransaction, ServerTransaction, Timers
from telephony.sip.transport import Peer, SipTransport

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, NOTIFY, REFER, UPDATE"
CallHandler = Callable[[CallLeg], Awaitable[None]]
_IN_DIALOG_ONLY = {"BYE", "INFO", "NOTIFY", "REFER", "PRACK", "UPDATE"}
_KNOWN_NOT_ALLOWED = {"REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE"}


class DialError(Exception):
    """An outbound call that did not connect; ``status`` is the SIP status (408 for no answer)."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


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
        self.timers = timers or Timers()
        self.transport = SipTransport(self._on_message)
        self.access = AccessPolicy(self.trunks)
        self.limiter = RateLimiter(self.config.invites_per_second_per_source)
        self.server_tx: dict[tuple[str, str, str], ServerTransaction] = {}
        self.client_tx: dict[tuple[str, str], ClientTransaction] = {}
        self.calls: dict[str, CallLeg] = {}
        self.registrations: list[Any] = []
        self.rejected = 0
        self.malformed = 0
        self._tags: dict[str, str] = {}
        self._tasks: set[asyncio.Task] = set()
        self._log_times: dict[str, float] = {}

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind the configured UDP/TCP listeners and start trunk registrations. Raises OSError if a port is
        taken."""
        if self.config.listen_udp:
            addr = await self.transport.listen_udp(*split_hostport(self.config.listen_udp))
            log.info("SIP listening on udp:%s:%s", *addr)
        if self.config.listen_tcp:
            addr = await self.transport.listen_tcp(*split_hostport(self.config.listen_tcp))
            log.info("SIP listening on tcp:%s:%s", *addr)
        from telephony.sip.registration import Registration

        for trunk in self.trunks:
            if trunk.register_:
                reg = Registration(self, trunk)
                self.registrations.append(reg)
                reg.start()

    async def stop(self) -> None:
        """Hang up every call, unregister, close sockets."""
        for reg in self.registrations:
            await reg.stop()
        for leg in list(self.calls.values()):
            with contextlib.suppress(TimeoutError, CallError):
                await asyncio.wait_for(leg.hangup(), 2)
        # Call handlers end on their own once their leg ended (a pipeline that is cancelled in the middle of
        # closing can hang); only what is still running after a grace period is cancelled.
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=3)
        for task in list(self._tasks):
            task.cancel()
        await self.transport.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run ``coro`` as a task the agent keeps a reference to (and cancels on stop)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP task failed", exc_info=task.exception())

    # --- addressing ----------------------------------------------------------------------------------------
    def local_host(self, peer: Peer | None = None) -> str:
        """Our address as ``peer`` should see it: the configured public address, the listen address, or the
        interface the OS routes to the peer through."""
        if self.config.public_address:
            return self.config.public_address
        listen = self.transport.udp_address or self.transport.tcp_address
        if listen and listen[0] not in ("0.0.0.0", "::"):
            return listen[0]
        target = peer.host if peer else "192.0.2.1"
        try:
            with socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((target, 9))
                return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"

    def local_port(self, transport: str) -> int:
        addr = self.transport.tcp_address if transport == "TCP" else self.transport.udp_address
        return addr[1] if addr else 5060

    def via(self, peer: Peer) -> Via:
        return Via(peer.transport, self.local_host(peer), self.local_port(peer.transport),
                   {"branch": new_branch(), "rport": ""})

    def contact(self, peer: Peer, user: str = "voicebot") -> str:
        uri = f"sip:{user}@{self.local_host(peer)}:{self.local_port(peer.transport)}"
        return uri + (";transport=tcp" if peer.transport == "TCP" else "")

    def standard_headers(self, peer: Peer) -> list[tuple[str, str]]:
        return [("Contact", f"<{self.contact(peer)}>"), ("Allow", ALLOW), ("User-Agent", self.config.user_agent)]

    def local_tag_for(self, leg: CallLeg) -> str:
        return self._tags.setdefault(leg.call_id, new_tag())

    def session_id(self) -> int:
        return secrets.randbelow(2**31)

    def send(self, peer: Peer, data: bytes) -> None:
        self.transport.send_nowait(peer, data)

    def forget(self, leg: CallLeg) -> None:
        if self.calls.get(leg.call_id) is leg:
            del self.calls[leg.call_id]
            self._tags.pop(leg.call_id, None)

    def _log_limited(self, key: str, level: int, msg: str, *args: object) -> None:
        # A flood must not become a log flood: one line per key per second.
        now = time.monotonic()
        if now - self._log_times.get(key, 0.0) >= 1.0:
            if len(self._log_times) > 10000:
                self._log_times.clear()
            self._log_times[key] = now
            log.log(level, msg, *args)

    # --- receiving -----------------------------------------------------------------------------------------
    def _on_message(self, data: bytes, peer: Peer) -> None:
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            self.malformed += 1
            self._log_limited(f"bad:{peer.host}", logging.WARNING, "SIP: malformed message from %s: %s", peer, exc)
            if exc.status and exc.partial is not None and exc.partial.method != "ACK":
                self.send(peer, make_response(exc.partial, exc.status, f"Bad Request ({exc})"
                                              if exc.status == 400 else "").to_bytes())
            return
        if isinstance(msg, SipResponse):
            self._on_response(msg)
        else:
            _stamp_via(msg, peer)
            self._on_request(msg, peer)

    def _server_tx(self, req: SipRequest, peer: Peer) -> ServerTransaction:
        tx = ServerTransaction(req, lambda b: self.send(peer, b), peer.transport == "TCP", self.timers,
                               lambda t: self.server_tx.pop(t.request.transaction_key, None))
        self.server_tx[req.transaction_key] = tx
        return tx

    def _reply(self, req: SipRequest, peer: Peer, status: int, reason: str = "",
               extra: list[tuple[str, str]] | None = None) -> None:
        """A stateless response (errors before any transaction exists)."""
        if req.method != "ACK":
            self.send(peer, make_response(req, status, reason, to_tag=new_tag(), extra=extra).to_bytes())

    def _on_request(self, req: SipRequest, peer: Peer) -> None:
        tx = self.server_tx.get(req.transaction_key)
        if tx is not None:
            tx.receive(req)
            return
        if req.method == "ACK":
            leg = self.calls.get(req.call_id)
            if leg is not None and leg.dialog is not None and req.to_addr.tag == leg.dialog.local_tag:
                leg._on_ack(req)
            return
        if req.method == "CANCEL":
            self._on_cancel(req, peer)
            return
        if req.to_addr.tag:
            self._in_dialog(req, peer)
            return
        if req.method == "INVITE":
            self._on_invite(req, peer)
        elif req.method == "OPTIONS":
            if self.access.decide(peer.host, "OPTIONS", None).action == "reject" and not self._is_trunk_host(peer):
                self._reject(req, peer, "OPTIONS")
                return
            self._reply(req, peer, 200, extra=[("Allow", ALLOW), ("Accept", "application/sdp"),
                                               ("User-Agent", self.config.user_agent)])
        elif req.method in _IN_DIALOG_ONLY:
            self._reply(req, peer, 481)
        elif req.method in _KNOWN_NOT_ALLOWED:
            self._reply(req, peer, 405, extra=[("Allow", ALLOW)])
        else:
            self._reply(req, peer, 501, extra=[("Allow", ALLOW)])

    def _is_trunk_host(self, peer: Peer) -> bool:
        return any(t.host == peer.host for t in self.trunks)

    def _reject(self, req: SipRequest, peer: Peer, what: str) -> None:
        self.rejected += 1
        self._log_limited(f"403:{peer.host}", logging.WARNING,
                          "SIP: %s from %s rejected with 403 (not a configured trunk): From %s To %s",
                          what, peer, req.headers.get("From"), req.headers.get("To"))
        self._reply(req, peer, 403)

    def _on_cancel(self, req: SipRequest, peer: Peer) -> None:
        branch, sent_by, _ = req.transaction_key
        invite_tx = self.server_tx.get((branch, sent_by, "INVITE"))
        if invite_tx is None:
            self._reply(req, peer, 481)
            return
        self._server_tx(req, peer).respond(make_response(req, 200, to_tag=self._tags.get(req.call_id)))
        leg = self.calls.get(req.call_id)
        if leg is not None and leg.state == "ringing":
            leg._cancelled()

    def _in_dialog(self, req: SipRequest, peer: Peer) -> None:
        leg = self.calls.get(req.call_id)
        if leg is None or leg.dialog is None or req.to_addr.tag != leg.dialog.local_tag \
                or req.from_addr.tag != leg.dialog.remote_tag:
            self._reply(req, peer, 481)
            return
        if not leg.dialog.accept_remote_cseq(req):
            self._reply(req, peer, 500, "CSeq Out of Order")
            return
        leg._on_request(req, self._server_tx(req, peer))

    def _on_invite(self, req: SipRequest, peer: Peer) -> None:
        if not self.limiter.allow(peer.host):
            self._log_limited(f"flood:{peer.host}", logging.WARNING,
                              "SIP: INVITE flood from %s; dropping INVITEs above %.0f/s",
                              peer, self.config.invites_per_second_per_source)
            return
        decision = self.access.decide(peer.host, "INVITE", req.headers.get("Proxy-Authorization"))
        if decision.action == "reject":
            self._reject(req, peer, "INVITE")
            return
        if decision.action == "challenge":
            self._reply(req, peer, 407, extra=[("Proxy-Authenticate", self.access.verifier.challenge())])
            return
        try:
            uri = SipUri.parse(req.uri)
        except ValueError:
            self._reply(req, peer, 416)
            return
        max_forwards = (req.headers.get("Max-Forwards") or "70").strip()
        if not max_forwards.isdigit():
            self._reply(req, peer, 400, "Bad Max-Forwards")
            return
        if int(max_forwards) == 0:
            self._reply(req, peer, 483)
            return
        required = [r.strip() for r in req.headers.get_all("Require") if r.strip()]
        if required:
            self._reply(req, peer, 420, extra=[("Unsupported", ", ".join(required))])
            return
        if req.call_id in self.calls:
            self._reply(req, peer, 482)
            return
        if len(self.calls) >= self.config.max_calls:
            self._reply(req, peer, 503, extra=[("Retry-After", "5")])
            return
        offer = None
        if req.body:
            ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/sdp":
                self._reply(req, peer, 415, extra=[("Accept", "application/sdp")])
                return
            try:
                offer = AudioDescription.parse(req.body)
            except SdpError as exc:
                self._reply(req, peer, 488, extra=[("Warning", f'304 voicebot "{exc}"')])
                return
            # Refuse an offer without a usable codec now, before an RTP port is taken for it.
            if not any(offer.find(codec) is not None for codec in self.config.codecs):
                self._reply(req, peer, 488, extra=[("Warning", f'304 voicebot "no common codec: offered '
                                                               f'{", ".join(offer.codec_names())}"')])
                return
        tx = self._server_tx(req, peer)
        tx.respond(make_response(req, 100))
        pai = req.headers.get("P-Asserted-Identity")
        ident = Address.parse(pai) if pai and decision.trunk is not None else req.from_addr
        dialled = uri.user or req.to_addr.user
        route = decision.trunk.dids.get(dialled or "") if decision.trunk else None
        rtp = RtpSession(jitter_prefetch=self.config.jitter_buffer_ms // 20, latching=self.config.rtp_latching,
                         signalling_host=peer.host)
        leg = CallLeg(self, req.call_id, "inbound", peer, rtp,
                      caller=ident.user, caller_name=ident.display, dialled=dialled, trunk=decision.trunk,
                      route=route)
        self.calls[req.call_id] = leg
        log.info("SIP: INVITE %s from %s (caller %s, dialled %s, trunk %s)", req.call_id, peer, leg.caller,
                 leg.dialled, decision.trunk.name if decision.trunk else "-")
        self.spawn(self._run_inbound(leg, req, tx, offer))

    async def _run_inbound(self, leg: CallLeg, req: SipRequest, tx: ServerTransaction,
                           offer: AudioDescription | None) -> None:
        bind = self._rtp_bind_host()
        try:
            await leg.rtp.open(bind, self.config.rtp_port_min, self.config.rtp_port_max)
        except OSError as exc:
            log.error("call %s: %s", leg.call_id, exc)
            tx.respond(make_response(req, 503, to_tag=self.local_tag_for(leg), extra=[("Retry-After", "5")]))
            await leg._end("no RTP port")
            return
        if not await leg._setup_inbound(req, tx, offer, self.local_host(leg.peer), tuple(self.config.codecs)):
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

    def _rtp_bind_host(self) -> str:
        listen = self.transport.udp_address or self.transport.tcp_address
        return listen[0] if listen else "0.0.0.0"

    def _on_response(self, resp: SipResponse) -> None:
        try:
            key = (resp.top_via.branch, resp.cseq.method)
        except ValueError:
            return
        tx = self.client_tx.get(key)
        if tx is not None:
            tx.receive(resp)

    # --- sending requests ----------------------------------------------------------------------------------
    async def send_request(self, req: SipRequest, peer: Peer) -> ClientTransaction:
        """Start a client transaction for ``req``; ``await tx.final`` gives the final response."""
        if peer.transport == "TCP":
            await self.transport.send(peer, b"")
        tx = ClientTransaction(req, lambda b: self.send(peer, b), peer.transport == "TCP", self.timers,
                               lambda t: self.client_tx.pop(t.key, None))
        self.client_tx[tx.key] = tx
        tx.start()
        return tx

    async def request(self, req: SipRequest, peer: Peer) -> SipResponse:
        """Send ``req`` and return its final response (a local 408 if the peer never answers)."""
        return await (await self.send_request(req, peer)).final

    async def resolve(self, host: str, port: int, transport: str) -> Peer:
        """A :class:`Peer` with ``host`` resolved to an address. Raises DialError(404) if it does not resolve."""
        try:
            ipaddress.ip_address(host)
            return Peer(transport, host, port)
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise DialError(404, f"cannot resolve {host}: {exc}") from None
        return Peer(transport, str(infos[0][4][0]), port)

    def trunk(self, name: str) -> TrunkConfig:
        for t in self.trunks:
            if t.name == name:
                return t
        raise KeyError(f"no trunk named {name!r} (configured: {', '.join(t.name for t in self.trunks) or 'none'})")

    async def dial(self, uri: str, trunk: TrunkConfig | None = None, caller: str = "voicebot",
                   ring_timeout: float | None = None) -> CallLeg:
        """Call ``uri`` (directly, or through ``trunk``) and return the answered leg.

        Raises DialError with the SIP status if the call is refused, not answered in ``ring_timeout``
        (408 after CANCEL) or the address is unusable.
        """
        try:
            target = SipUri.parse(uri)
        except ValueError as exc:
            raise DialError(400, str(exc)) from None
        if trunk is not None:
            peer = await self.resolve(trunk.host, trunk.port, trunk.transport.upper())
            if target.host != trunk.host and not target.user:
                raise DialError(400, "a number or user is needed to dial through a trunk")
        else:
            transport = target.params.get("transport", "udp").upper()
            if transport not in ("UDP", "TCP"):
                raise DialError(400, f"unsupported transport {transport}")
            peer = await self.resolve(target.host, target.port or 5060, transport)
        rtp = RtpSession(jitter_prefetch=self.config.jitter_buffer_ms // 20, latching=self.config.rtp_latching,
                         signalling_host=peer.host)
        try:
            await rtp.open(self._rtp_bind_host(), self.config.rtp_port_min, self.config.rtp_port_max)
        except OSError as exc:
            raise DialError(503, str(exc)) from None
        host = self.local_host(peer)
        offer = make_offer(host, rtp.local_port, self.session_id(), 0, codecs=tuple(self.config.codecs))
        call_id = new_call_id(host)
        from_user = (trunk.username if trunk and trunk.username else caller)
        from_hdr = str(Address(f"sip:{from_user}@{trunk.host if trunk else host}", "", {"tag": new_tag()}))
        leg = CallLeg(self, call_id, "outbound", peer, rtp, caller=from_user, caller_name="",
                      dialled=target.user, trunk=trunk)
        self.calls[call_id] = leg
        cseq = 1
        auth: list[tuple[str, str]] = []
        try:
            for _attempt in range(2):
                h = Headers()
                h.add("Via", str(self.via(peer)))
                h.add("Max-Forwards", "70")
                h.add("From", from_hdr)
                h.add("To", f"<{uri}>")
                h.add("Call-ID", call_id)
                h.add("CSeq", f"{cseq} INVITE")
                for name, value in self.standard_headers(peer) + auth:
                    h.add(name, value)
                h.add("Content-Type", "application/sdp")
                invite = SipRequest(headers=h, method="INVITE", uri=uri, body=offer.to_bytes())
                tx = await self.send_request(invite, peer)
                leg._outbound_tx = tx
                try:
                    resp = await asyncio.wait_for(asyncio.shield(tx.final),
                                                  ring_timeout or self.config.ring_timeout_s)
                except TimeoutError:
                    if tx.state == "calling":
                        # Nothing came back at all: there is no one to CANCEL (RFC 3261 §9.1), just give up.
                        tx._terminate()
                        raise DialError(408, "no response") from None
                    await self._cancel_invite(invite, peer)
                    try:
                        resp = await asyncio.wait_for(asyncio.shield(tx.final), 64 * self.timers.t1)
                    except TimeoutError:
                        resp = SipResponse(status=408, reason="No Answer")
                    if resp.status < 300:
                        # Answered in the race with our CANCEL: keep the call.
                        break
                    raise DialError(408, "no answer") from None
                if resp.status in (401, 407) and trunk is not None and trunk.password and not auth:
                    challenge = resp.headers.get("WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate")
                    try:
                        value = authorization(challenge or "", trunk.username or "", trunk.password, "INVITE", uri)
                    except ValueError as exc:
                        raise DialError(resp.status, f"cannot answer the challenge: {exc}") from None
                    auth = [("Authorization" if resp.status == 401 else "Proxy-Authorization", value)]
                    cseq += 1
                    continue
                break
            if not 200 <= resp.status < 300:
                raise DialError(resp.status, resp.reason)
            dialog = Dialog.as_uac(invite, resp, self.contact(peer))
            ack = dialog.request("ACK", self.via(peer), cseq=invite.cseq.number)
            ack_bytes = ack.to_bytes()
            self.send(peer, ack_bytes)
            tx.on_2xx_retransmit = lambda _r: self.send(peer, ack_bytes)
            try:
                leg._answered_outbound(dialog, resp, offer)
            except SdpError as exc:
                await leg.hangup()
                raise DialError(488, f"unusable SDP answer: {exc}") from None
            log.info("SIP: outbound call %s to %s answered", call_id, uri)
            return leg
        except BaseException as exc:
            pending = leg._outbound_tx
            if isinstance(exc, asyncio.CancelledError) and pending is not None and not pending.final.done():
                # Whoever dialled gave up while it rang (a queue moving on): the phone must stop ringing.
                self.spawn(self._abandon_invite(pending, peer))
            if leg.state != "answered":
                await leg._end("dial failed")
            raise

    async def _cancel_invite(self, invite: SipRequest, peer: Peer) -> None:
        h = Headers()
        h.add("Via", invite.headers.get_all("Via")[0])
        h.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            h.add(name, invite.headers.get(name) or "")
        h.add("CSeq", f"{invite.cseq.number} CANCEL")
        cancel = SipRequest(headers=h, method="CANCEL", uri=invite.uri)
        await self.send_request(cancel, peer)

    async def _abandon_invite(self, tx: ClientTransaction, peer: Peer) -> None:
        """End an INVITE nobody waits for: CANCEL it once it rings (not before, RFC 3261 §9.1); if the
        callee answers anyway, acknowledge and hang up at once."""
        deadline = asyncio.get_running_loop().time() + 64 * self.timers.t1
        while tx.state == "calling" and not tx.final.done() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)  # no event for the first provisional response: poll briefly
        if not tx.final.done() and tx.state == "proceeding":
            await self._cancel_invite(tx.request, peer)
        try:
            resp = await asyncio.wait_for(asyncio.shield(tx.final), 64 * self.timers.t1)
        except TimeoutError:
            return
        if 200 <= resp.status < 300:
            dialog = Dialog.as_uac(tx.request, resp, self.contact(peer))
            self.send(peer, dialog.request("ACK", self.via(peer), cseq=tx.request.cseq.number).to_bytes())
            bye = dialog.request("BYE", self.via(peer), extra=self.standard_headers(peer))
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(self.request(bye, peer), 64 * self.timers.t1 + 1)

    async def cancel(self, leg: CallLeg) -> None:
        """Give up an outbound call that is still ringing."""
        tx = leg._outbound_tx
        if tx is not None and not tx.final.done():
            await self._cancel_invite(tx.request, leg.peer)
        await leg._end("cancelled")


def _stamp_via(req: SipRequest, peer: Peer) -> None:
    """Record where the request really came from in its top Via (RFC 3261 §18.2.1, RFC 3581): responses
    copy it, and we send them to that address, so a caller behind NAT gets its answers."""
    items = req.headers.items()
    for i, (name, value) in enumerate(items):
        if name == "Via":
            via = Via.parse(split_list(value)[0])
            if "rport" in via.params:
                via.params["rport"] = str(peer.port)
            if via.host != peer.host or "rport" in via.params:
                via.params["received"] = peer.host
            rest = split_list(value)[1:]
            req.headers._items[i] = (name, ", ".join([str(via), *rest]))
            return
