"""The INVITE session (PJSIP's ``sip_inv.c``): one call's signalling, as caller (UAC) and as callee (UAS).

The whole INVITE state machine lives here: inbound INVITE -> 180 -> 200 / reject / CANCEL -> 487, the
no-ACK timeout, the outbound INVITE with digest retry, CANCEL and the 2xx ACK, re-INVITE and UPDATE (hold,
a new address or codec, a late offer answered in the ACK), BYE, SIP INFO keys, REFER out with its NOTIFY,
403 to an incoming REFER. It drives the SDP offer/answer and tells the :class:`SessionOwner` (the call leg)
what media was negotiated; it never touches RTP. It talks to the network only through the :class:`Endpoint`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from telephony.config import DidRoute, TrunkConfig, split_hostport
from telephony.leg import CallError
from telephony.sdp import (
    AudioDescription,
    Negotiated,
    SdpError,
    SrtpMismatch,
    SrtpMode,
    accept_answer,
    answer,
    make_offer,
    new_srtp_key,
)
from telephony.sip.auth import authorization, parse_digest
from telephony.sip.dialog import Dialog
from telephony.sip.endpoint import Endpoint, ResolveError
from telephony.sip.message import (
    Address,
    Headers,
    SipRequest,
    SipResponse,
    SipUri,
    make_response,
    new_call_id,
    new_tag,
    split_list,
)
from telephony.sip.transaction import ClientTransaction, ServerTransaction
from telephony.sip.transport import Peer, TransportError

log = logging.getLogger(__name__)

METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "INFO", "NOTIFY", "REFER", "UPDATE")
# Names the trunk of a call sent to the trunk's ``outbound_proxy`` (the cluster's SIP front routes on it).
TRUNK_HEADER = "X-Voicebot-Trunk"
FRONT_REFUSED = "Not A Cluster Node"  # the front's reason phrases for a dial-out it refuses
NO_SUCH_TRUNK = "No Such Trunk"
WRONG_SECRET = "Wrong Cluster Secret"
NO_SECRET_AT_FRONT = "No Cluster Secret At The Front"
# The realm of the front's own challenge to a node's call out: answered with the cluster's secret, never another.
FRONT_REALM = "voicebot-cluster"


class DialError(Exception):
    """An outbound call that did not connect; ``status`` is the SIP status (408 for no answer)."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def session_id() -> int:
    """A fresh SDP session id (o= line)."""
    return secrets.randbelow(2**31)


class SessionOwner(Protocol):
    """What an INVITE session tells the one that owns it (the call leg with the media)."""

    def media_negotiated(self, negotiated: Negotiated) -> None:
        """Apply the media of a completed offer/answer (initial, re-INVITE, UPDATE or the ACK of a late offer)."""
        ...

    def session_answered(self) -> None:
        """The call is established (inbound: the ACK of our 200 arrived; outbound: we sent our ACK): media
        may flow."""
        ...

    async def session_ended(self, reason: str) -> None:
        """The call is over (called once); release the media."""
        ...

    def session_dtmf(self, key: str) -> None:
        """The peer pressed ``key`` (SIP INFO)."""
        ...


@dataclass(frozen=True)
class IncomingCall:
    """Who an accepted inbound INVITE is from and for."""

    caller: str | None
    caller_name: str
    dialled: str | None
    trunk: TrunkConfig | None
    route: DidRoute | None


class InviteSession:
    """The signalling of one call. ``state`` goes ringing -> answered -> ended (or ringing -> ended);
    ``established`` turns true once the 2xx is acknowledged (RFC 3261's confirmed dialog)."""

    def __init__(self, layer: InviteLayer, call_id: str, direction: str, peer: Peer, *,
                 invite: SipRequest | None = None, invite_tx: ServerTransaction | None = None,
                 offer: AudioDescription | None = None):
        self.layer = layer
        self.endpoint = layer.endpoint
        self.call_id = call_id
        self.direction = direction  # "inbound" or "outbound"
        self.peer = peer
        self.state = "ringing"
        self.established = False
        self.dialog: Dialog | None = None
        self.local_hold = False  # we put the peer on hold
        self.remote_hold = False  # the peer put us on hold
        self.owner: SessionOwner | None = None
        self.srtp: SrtpMode = "off"  # set by whoever runs the call, from the trunk's `srtp`
        self._srtp_key = new_srtp_key()
        self._tag: str | None = None
        self._invite = invite  # the INVITE of an inbound call
        self._invite_tx = invite_tx  # its transaction (then that of the last re-INVITE)
        self._offer = offer  # the SDP offer in it
        self._outbound_tx: ClientTransaction | None = None  # our INVITE while an outbound call rings
        self._local_sdp: AudioDescription | None = None
        self._sdp_version = 0
        self._codec = "PCMU"  # the negotiated codec (the RTP default until then)
        self._dtmf_pt: int | None = None
        self._refer_result: asyncio.Future[int] | None = None
        self._reinvite_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<InviteSession {self.direction} {self.call_id} {self.state}>"

    def attach(self, owner: SessionOwner) -> None:
        """Tell ``owner`` about this session's media and end from now on."""
        self.owner = owner

    @property
    def _owner(self) -> SessionOwner:
        assert self.owner is not None, "an InviteSession needs an owner before it runs"
        return self.owner

    def local_tag(self) -> str:
        """Our To tag as the answering side (chosen on first use)."""
        if self._tag is None:
            self._tag = new_tag()
        return self._tag

    # --- UAS: an inbound INVITE ----------------------------------------------------------------------------
    async def ring(self, host: str, port: int, codecs: tuple[str, ...]) -> bool:
        """Prepare our SDP answer (or offer, if the INVITE had none) for media at ``host:port`` and send 180.
        False if the call failed (488, no common codec or an SRTP mismatch)."""
        invite, tx = self._invite, self._invite_tx
        assert invite is not None and tx is not None
        sid = session_id()
        if self._offer is None:
            self._local_sdp = make_offer(host, port, sid, 0, codecs=codecs, srtp=self.srtp, srtp_key=self._srtp_key)
        else:
            try:
                self._local_sdp, negotiated = answer(self._offer, host, port, sid, 0, codecs, srtp=self.srtp,
                                                     srtp_key=self._srtp_key)
            except SdpError as exc:
                tx.respond(make_response(invite, 488, to_tag=self.local_tag(),
                                         extra=[("Warning", f'304 voicebot "{exc}"')]))
                await self._end("SRTP mismatch" if isinstance(exc, SrtpMismatch) else "no common codec")
                return False
            self._apply(negotiated)
        tx.respond(make_response(invite, 180, to_tag=self.local_tag(),
                                 extra=[("Contact", f"<{self.endpoint.contact(self.peer)}>"), *_record_route(invite)]))
        return True

    def answer(self) -> None:
        """Answer a ringing inbound call: 200 OK with our SDP. The owner hears ``session_answered`` when the
        ACK arrives, not before: until then the caller's address and SDP are unconfirmed."""
        if self.direction != "inbound" or self.state != "ringing" or self._invite_tx is None:
            raise CallError(f"cannot answer a {self.direction} call in state {self.state}")
        assert self._invite is not None and self._local_sdp is not None
        tx = self._invite_tx
        local_tag = self.local_tag()
        self.dialog = Dialog.as_uas(self._invite, local_tag, self.endpoint.contact(self.peer))
        ok = make_response(self._invite, 200, to_tag=local_tag, body=self._local_sdp.to_bytes(),
                           extra=[*self.endpoint.standard_headers(self.peer), *_record_route(self._invite),
                                  ("Content-Type", "application/sdp")])
        tx.on_no_ack = lambda: self.endpoint.spawn(self._no_ack())
        tx.respond(ok)
        self.state = "answered"

    async def reject(self, status: int = 486, reason: str = "", extra: list[tuple[str, str]] | None = None,
                     end_reason: str | None = None) -> None:
        """Refuse a ringing inbound call with a final error response."""
        if self.state != "ringing" or self._invite_tx is None or self._invite is None:
            raise CallError(f"cannot reject a call in state {self.state}")
        self._invite_tx.respond(make_response(self._invite, status, reason, to_tag=self.local_tag(), extra=extra))
        await self._end(end_reason or f"rejected {status}")

    def _on_ack(self, ack: SipRequest) -> None:
        if self._invite_tx is not None:
            self._invite_tx.ack_received()
        if ack.body and self._local_sdp is not None and self._invite is not None and not self._invite.body:
            # Late offer: the answer to the offer in our 200 arrives in the ACK.
            try:
                self._apply(accept_answer(self._local_sdp, AudioDescription.parse(ack.body)))
            except SdpError as exc:
                log.warning("call %s: unusable SDP in ACK (%s); hanging up", self.call_id, exc)
                self.endpoint.spawn(self.hangup())
                return
        if self.state == "answered" and not self.established:
            self.established = True
            self._owner.session_answered()

    async def _no_ack(self) -> None:
        if self.state == "answered":
            log.warning("call %s: our 200 OK was never acknowledged; hanging up", self.call_id)
            await self.hangup()

    def _cancelled(self) -> None:
        """The caller gave up before we answered (CANCEL)."""
        if self.state == "ringing" and self._invite_tx is not None and self._invite is not None:
            self._invite_tx.respond(make_response(self._invite, 487, to_tag=self.local_tag()))
        self.endpoint.spawn(self._end("cancelled"))

    # --- UAC: our INVITE -----------------------------------------------------------------------------------
    async def invite(self, uri: str, from_hdr: str, port: int, trunk: TrunkConfig | None,
                     ring_timeout: float) -> None:
        """Send INVITE with our offer for media on ``port`` and return once answered (ACK sent).

        Raises DialError with the SIP status if the call is refused, not answered in ``ring_timeout`` (408
        after CANCEL) or its SDP answer is unusable; the session has ended then."""
        ep, peer, call_id = self.endpoint, self.peer, self.call_id
        host = ep.local_host(peer)
        offer = make_offer(host, port, session_id(), 0, codecs=tuple(ep.config.codecs), srtp=self.srtp,
                           srtp_key=self._srtp_key)
        cseq = 1
        auth: list[tuple[str, str]] = []
        proxied = trunk is not None and trunk.outbound_proxy is not None  # the proxy answers challenges
        try:
            for _attempt in range(2):
                h = Headers()
                h.add("Via", str(ep.via(peer)))
                h.add("Max-Forwards", "70")
                h.add("From", from_hdr)
                h.add("To", f"<{uri}>")
                h.add("Call-ID", call_id)
                h.add("CSeq", f"{cseq} INVITE")
                for name, value in ep.standard_headers(peer) + auth:
                    h.add(name, value)
                if proxied and trunk is not None:
                    h.add(TRUNK_HEADER, trunk.name)
                h.add("Content-Type", "application/sdp")
                invite = SipRequest(headers=h, method="INVITE", uri=uri, body=offer.to_bytes())
                try:
                    tx = await ep.send_request(invite, peer)
                except TransportError as exc:
                    raise DialError(503, str(exc)) from None
                self._outbound_tx = tx
                try:
                    resp = await asyncio.wait_for(asyncio.shield(tx.final), ring_timeout)
                except TimeoutError:
                    if tx.state == "calling":
                        # Nothing came back at all: there is no one to CANCEL (RFC 3261 §9.1), just give up.
                        tx.abandon()
                        raise DialError(408, "no response") from None
                    await self._cancel_invite(invite)
                    try:
                        resp = await asyncio.wait_for(asyncio.shield(tx.final), 64 * ep.timers.t1)
                    except TimeoutError:
                        resp = SipResponse(status=408, reason="No Answer")
                    if resp.status < 300:
                        # Answered in the race with our CANCEL: keep the call.
                        break
                    raise DialError(408, "no answer") from None
                if resp.status == 407 and proxied and trunk is not None and not auth and _front_challenge(resp):
                    # The SIP front asks who we are before it lets the call out through a trunk: once, with the
                    # cluster's secret; the front removes these credentials before the trunk sees the INVITE.
                    secret = trunk.outbound_proxy_password
                    if secret is None:
                        raise DialError(407, proxied_refusal(trunk, 407, resp.reason, from_front=True))
                    try:
                        value = authorization(resp.headers.get("Proxy-Authenticate") or "",
                                              trunk.outbound_proxy_username or "node", secret, "INVITE", uri)
                    except ValueError as exc:
                        raise DialError(407, f"cannot answer the SIP front's challenge: {exc}") from None
                    auth = [("Proxy-Authorization", value)]
                    cseq += 1
                    continue
                if resp.status in (401, 407) and trunk is not None and trunk.password and not auth and not proxied:
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
                if proxied and trunk is not None:
                    raise DialError(resp.status, proxied_refusal(trunk, resp.status, resp.reason,
                                                                 from_front=_front_challenge(resp)))
                raise DialError(resp.status, resp.reason)
            try:
                dialog = Dialog.as_uac(invite, resp, ep.contact(peer))
            except ValueError as exc:
                raise DialError(502, f"unusable answer: {exc}") from None
            ack = dialog.request("ACK", ep.via(peer), cseq=invite.cseq.number)
            ack_bytes = ack.to_bytes()
            ep.send(peer, ack_bytes)
            tx.on_2xx_retransmit = lambda _r: ep.send(peer, ack_bytes)
            try:
                self._answered_outbound(dialog, resp, offer)
            except SdpError as exc:
                await self.hangup()
                raise DialError(488, f"unusable SDP answer: {exc}") from None
            log.info("SIP: outbound call %s to %s answered", call_id, uri)
        except BaseException as exc:
            pending = self._outbound_tx
            if isinstance(exc, asyncio.CancelledError) and pending is not None and not pending.final.done():
                # Whoever dialled gave up while it rang (a queue moving on): the phone must stop ringing.
                ep.spawn(self._abandon_invite(pending))
            if self.state != "answered":
                await self._end("dial failed")
            raise

    def _answered_outbound(self, dialog: Dialog, response: SipResponse, offer: AudioDescription) -> None:
        self.dialog = dialog
        self._local_sdp = offer
        self._apply(accept_answer(offer, AudioDescription.parse(response.body)))
        self.state = "answered"
        self.established = True  # our ACK is on its way
        self._owner.session_answered()

    async def _cancel_invite(self, invite: SipRequest) -> None:
        h = Headers()
        h.add("Via", invite.headers.get_all("Via")[0])
        h.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            h.add(name, invite.headers.get(name) or "")
        h.add("CSeq", f"{invite.cseq.number} CANCEL")
        cancel = SipRequest(headers=h, method="CANCEL", uri=invite.uri)
        await self.endpoint.send_request(cancel, self.peer)

    async def _abandon_invite(self, tx: ClientTransaction) -> None:
        """End an INVITE nobody waits for: CANCEL it once it rings (not before, RFC 3261 §9.1); if the
        callee answers anyway, acknowledge and hang up at once."""
        ep, peer = self.endpoint, self.peer
        deadline = asyncio.get_running_loop().time() + 64 * ep.timers.t1
        while tx.state == "calling" and not tx.final.done() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)  # no event for the first provisional response: poll briefly
        if not tx.final.done() and tx.state == "proceeding":
            await self._cancel_invite(tx.request)
        try:
            resp = await asyncio.wait_for(asyncio.shield(tx.final), 64 * ep.timers.t1)
        except TimeoutError:
            return
        if 200 <= resp.status < 300:
            dialog = Dialog.as_uac(tx.request, resp, ep.contact(peer))
            ep.send(peer, dialog.request("ACK", ep.via(peer), cseq=tx.request.cseq.number).to_bytes())
            bye = dialog.request("BYE", ep.via(peer), extra=ep.standard_headers(peer))
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(ep.request(bye, peer), 64 * ep.timers.t1 + 1)

    async def cancel(self) -> None:
        """Give up an outbound call that is still ringing."""
        tx = self._outbound_tx
        if tx is not None and not tx.final.done():
            await self._cancel_invite(tx.request)
        await self._end("cancelled")

    # --- both sides ----------------------------------------------------------------------------------------
    async def hangup(self, end_reason: str = "local hangup") -> None:
        """End the call whatever its state: BYE when answered (the call ends with ``end_reason``), CANCEL or an
        error response while ringing."""
        if self.state == "ended":
            return
        if self.state == "ringing":
            if self.direction == "inbound":
                await self.reject(480, "Temporarily Unavailable")
            else:
                await self.cancel()
            return
        assert self.dialog is not None
        await self._end(end_reason)
        ep = self.endpoint
        bye = self.dialog.request("BYE", ep.via(self.peer), extra=ep.standard_headers(self.peer))
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(ep.request(bye, self.peer), 64 * ep.timers.t1 + 1)

    async def reinvite(self, direction: str) -> None:
        """Offer our media again with ``direction`` (sendonly: hold, sendrecv: unhold). Raises CallError if
        the call is not answered or the peer refuses."""
        if self.state != "answered" or self.dialog is None or self._local_sdp is None:
            raise CallError("only an answered call can be put on hold")
        ep = self.endpoint
        async with self._reinvite_lock:
            self._sdp_version += 1
            sdp = make_offer(self._local_sdp.address, self._local_sdp.port, self._local_sdp.session_id,
                             self._sdp_version, direction, codecs=(self._codec,), dtmf_pt=self._dtmf_pt or 101,
                             srtp=self.srtp, srtp_key=self._srtp_key)
            req = self.dialog.request("INVITE", ep.via(self.peer), sdp.to_bytes(), "application/sdp",
                                      extra=ep.standard_headers(self.peer))
            resp = await ep.request(req, self.peer)
            if 200 <= resp.status < 300:
                ack = self.dialog.request("ACK", ep.via(self.peer), cseq=req.cseq.number)
                ep.send(self.peer, ack.to_bytes())
                self._local_sdp = sdp
                if resp.body:
                    try:
                        self._apply(accept_answer(sdp, AudioDescription.parse(resp.body)))
                    except SdpError as exc:
                        log.warning("call %s: bad SDP in re-INVITE answer: %s", self.call_id, exc)
            else:
                raise CallError(f"re-INVITE refused: {resp.status} {resp.reason}")
        self.local_hold = direction != "sendrecv"

    async def refer(self, target: str, timeout: float) -> int:
        """Blind transfer (RFC 3515): ask the peer to call ``target``. Returns the final status its NOTIFY
        reports (200 = transferred), or 202 if it accepted but did not report in time. Raises CallError if
        REFER is refused."""
        if self.state != "answered" or self.dialog is None:
            raise CallError("only an answered call can be transferred")
        ep = self.endpoint
        loop = asyncio.get_running_loop()
        self._refer_result = loop.create_future()
        refer = self.dialog.request("REFER", ep.via(self.peer), extra=ep.standard_headers(self.peer) + [
            ("Refer-To", f"<{target}>"), ("Referred-By", f"<{self.dialog.local_uri}>")])
        resp = await ep.request(refer, self.peer)
        if resp.status >= 300:
            raise CallError(f"transfer refused: {resp.status} {resp.reason}")
        try:
            return await asyncio.wait_for(asyncio.shield(self._refer_result), timeout)
        except TimeoutError:
            return 202

    def _apply(self, negotiated: Negotiated) -> None:
        self._codec = negotiated.codec.name
        self._dtmf_pt = negotiated.dtmf_pt
        self.remote_hold = negotiated.remote_direction in ("sendonly", "inactive") \
            or negotiated.remote_address == "0.0.0.0"
        self._owner.media_negotiated(negotiated)

    def _on_request(self, req: SipRequest, tx: ServerTransaction) -> None:
        """An in-dialog request from the peer (after CSeq and tag checks)."""
        std = self.endpoint.standard_headers(self.peer)
        if req.method == "BYE":
            tx.respond(make_response(req, 200, extra=std))
            self.endpoint.spawn(self._end("remote hangup"))
        elif req.method == "INVITE":
            self._on_reinvite(req, tx)
        elif req.method == "INFO":
            key = _info_dtmf(req)
            if key:
                self._owner.session_dtmf(key)
            tx.respond(make_response(req, 200, extra=std))
        elif req.method == "NOTIFY":
            tx.respond(make_response(req, 200, extra=std))
            self._on_notify(req)
        elif req.method == "OPTIONS":
            tx.respond(make_response(req, 200, extra=std))
        elif req.method == "UPDATE":
            # RFC 3311: without a body a session refresh, with SDP a new offer answered in the 200.
            if req.body:
                self._on_reinvite(req, tx)
            else:
                tx.respond(make_response(req, 200, extra=std))
        elif req.method == "REFER":
            tx.respond(make_response(req, 403, "Transfer Not Allowed", extra=std))
        else:
            tx.respond(make_response(req, 501, extra=std))

    def _on_reinvite(self, req: SipRequest, tx: ServerTransaction) -> None:
        """A new offer from the peer in a re-INVITE or UPDATE (hold, unhold, a new address or codec)."""
        assert self._local_sdp is not None and self.dialog is not None
        if req.headers.get_all("Contact"):
            try:
                self.dialog.remote_target = Address.parse(req.headers.get_all("Contact")[0]).uri
            except ValueError as exc:
                tx.respond(make_response(req, 400, f"Bad Contact ({exc})"))
                return
        local = self._local_sdp
        self._sdp_version += 1
        if req.body:
            try:
                offer = AudioDescription.parse(req.body)
                codecs = (self._codec,) + tuple(c for c in ("PCMU", "PCMA") if c != self._codec)
                local, negotiated = answer(offer, local.address, local.port, local.session_id, self._sdp_version,
                                           codecs, hold=self.local_hold, srtp=self.srtp, srtp_key=self._srtp_key)
            except SdpError as exc:
                tx.respond(make_response(req, 488, extra=[("Warning", f'304 voicebot "{exc}"')]))
                return
            self._apply(negotiated)
            log.info("call %s: %s", self.call_id, "on hold" if self.remote_hold else "off hold")
        else:
            local.session_version = self._sdp_version
        self._local_sdp = local
        ok = make_response(req, 200, body=local.to_bytes(),
                           extra=self.endpoint.standard_headers(self.peer) + [("Content-Type", "application/sdp")])
        if req.method == "INVITE":
            # The 2xx of a re-INVITE is retransmitted until its ACK like any INVITE 2xx.
            self._invite_tx = tx
        tx.respond(ok)

    def _on_notify(self, req: SipRequest) -> None:
        if (req.headers.get("Event") or "").split(";")[0].strip().lower() != "refer":
            return
        frag = req.body.decode("utf-8", "replace").split("\r\n")[0].split("\n")[0].split(" ")
        if len(frag) >= 2 and frag[1].isdigit():
            status = int(frag[1])
            if status >= 200 and self._refer_result is not None and not self._refer_result.done():
                self._refer_result.set_result(status)

    async def _end(self, reason: str) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        await self._owner.session_ended(reason)
        self.layer.forget(self)


IncomingHandler = Callable[[InviteSession, IncomingCall], None]


class InviteLayer:
    """The INVITE sessions of one endpoint: routes ACK, CANCEL and in-dialog requests to their session, checks
    new INVITEs and hands each accepted one to ``on_incoming(session, call)``, which must attach an owner."""

    def __init__(self, endpoint: Endpoint, on_incoming: IncomingHandler):
        self.endpoint = endpoint
        self.on_incoming = on_incoming
        self.sessions: dict[str, InviteSession] = {}
        endpoint.add_handler(self, METHODS)

    def forget(self, session: InviteSession) -> None:
        if self.sessions.get(session.call_id) is session:
            del self.sessions[session.call_id]

    def on_request(self, req: SipRequest, peer: Peer) -> bool:
        if req.method == "ACK":
            session = self.sessions.get(req.call_id)
            if session is not None and session.dialog is not None and req.to_addr.tag == session.dialog.local_tag:
                session._on_ack(req)
            return True
        if req.method == "CANCEL":
            return self._on_cancel(req, peer)
        if req.to_addr.tag:
            return self._in_dialog(req, peer)
        if req.method == "INVITE":
            self._on_invite(req, peer)
            return True
        return False

    def _on_cancel(self, req: SipRequest, peer: Peer) -> bool:
        branch, sent_by, _ = req.transaction_key
        if self.endpoint.find_server_transaction((branch, sent_by, "INVITE")) is None:
            return False  # the endpoint answers 481
        session = self.sessions.get(req.call_id)
        self.endpoint.server_transaction(req, peer).respond(
            make_response(req, 200, to_tag=session._tag if session is not None else None))
        if session is not None and session.state == "ringing":
            session._cancelled()
        return True

    def _in_dialog(self, req: SipRequest, peer: Peer) -> bool:
        session = self.sessions.get(req.call_id)
        if session is None or session.dialog is None or req.to_addr.tag != session.dialog.local_tag \
                or req.from_addr.tag != session.dialog.remote_tag:
            return False  # the endpoint answers 481
        if not session.dialog.accept_remote_cseq(req):
            self.endpoint.reply(req, peer, 500, "CSeq Out of Order")
            return True
        session._on_request(req, self.endpoint.server_transaction(req, peer))
        return True

    def _on_invite(self, req: SipRequest, peer: Peer) -> None:
        ep = self.endpoint
        decision = ep.admit(req, peer)
        if decision is None:
            return
        try:
            uri = SipUri.parse(req.uri)
        except ValueError:
            ep.reply(req, peer, 416)
            return
        max_forwards = (req.headers.get("Max-Forwards") or "70").strip()
        if not max_forwards.isdigit():
            ep.reply(req, peer, 400, "Bad Max-Forwards")
            return
        if int(max_forwards) == 0:
            ep.reply(req, peer, 483)
            return
        required = [r.strip() for r in req.headers.get_all("Require") if r.strip()]
        if required:
            ep.reply(req, peer, 420, extra=[("Unsupported", ", ".join(required))])
            return
        try:
            for contact in req.headers.get_all("Contact"):
                Address.parse(contact)  # the dialog's remote target: refuse a malformed one now, not on answer
        except ValueError as exc:
            ep.reply(req, peer, 400, f"Bad Contact ({exc})")
            return
        if req.call_id in self.sessions:
            ep.reply(req, peer, 482)
            return
        unacked = sum(1 for s in self.sessions.values()
                      if s.direction == "inbound" and not s.established and s.peer.host == peer.host)
        if unacked >= ep.config.max_unacked_per_source:
            # INVITEs that are never acknowledged hold a slot for 64*T1: one source must not fill them all.
            ep.log_limited(f"unacked:{peer.host}", logging.WARNING, "SIP: %s has %d unacknowledged calls; "
                           "refusing more with 503", peer, unacked)
            ep.reply(req, peer, 503, "Too Many Unacknowledged Calls", extra=[("Retry-After", "5")])
            return
        if len(self.sessions) >= ep.config.max_calls:
            ep.reply(req, peer, 503, extra=[("Retry-After", "5")])
            return
        offer = None
        if req.body:
            ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/sdp":
                ep.reply(req, peer, 415, extra=[("Accept", "application/sdp")])
                return
            try:
                offer = AudioDescription.parse(req.body)
            except SdpError as exc:
                ep.reply(req, peer, 488, extra=[("Warning", f'304 voicebot "{exc}"')])
                return
            # Refuse an offer without a usable codec now, before an RTP port is taken for it.
            if not any(offer.find(codec) is not None for codec in ep.config.codecs):
                ep.reply(req, peer, 488, extra=[("Warning", f'304 voicebot "no common codec: offered '
                                                             f'{", ".join(offer.codec_names())}"')])
                return
        tx = ep.server_transaction(req, peer)
        tx.respond(make_response(req, 100))
        ident = _caller_identity(req, decision.trunk if decision.by_address else None)
        dialled = uri.user or req.to_addr.user
        route = decision.trunk.dids.get(dialled or "") if decision.trunk else None
        session = InviteSession(self, req.call_id, "inbound", peer, invite=req, invite_tx=tx, offer=offer)
        self.sessions[req.call_id] = session
        log.info("SIP: INVITE %s from %s (caller %s, dialled %s, trunk %s)", req.call_id, peer, ident.user,
                 dialled, decision.trunk.name if decision.trunk else "-")
        self.on_incoming(session, IncomingCall(ident.user, ident.display, dialled, decision.trunk, route))

    async def target(self, uri: str, trunk: TrunkConfig | None) -> tuple[SipUri, Peer]:
        """Where an outbound INVITE to ``uri`` (directly, or through ``trunk``) goes. Raises DialError."""
        try:
            target = SipUri.parse(uri)
        except ValueError as exc:
            raise DialError(400, str(exc)) from None
        try:
            if trunk is not None:
                if trunk.outbound_proxy is not None:
                    peer = await self.endpoint.resolve(*split_hostport(trunk.outbound_proxy), "UDP")
                else:
                    peer = await self.endpoint.resolve(trunk.host, trunk.port, trunk.transport.upper())
                if target.host != trunk.host and not target.user:
                    raise DialError(400, "a number or user is needed to dial through a trunk")
            else:
                transport = "TLS" if target.scheme == "sips" else target.params.get("transport", "udp").upper()
                if transport not in ("UDP", "TCP", "TLS"):
                    raise DialError(400, f"unsupported transport {transport}")
                default_port = 5061 if transport == "TLS" else 5060
                peer = await self.endpoint.resolve(target.host, target.port or default_port, transport)
        except ResolveError as exc:
            raise DialError(404, str(exc)) from None
        except TransportError as exc:
            raise DialError(503, str(exc)) from None
        return target, peer

    def outgoing(self, peer: Peer, from_user: str, from_host: str) -> tuple[InviteSession, str]:
        """A new outbound session to ``peer`` and the From header its INVITE carries."""
        call_id = new_call_id(self.endpoint.local_host(peer))
        from_hdr = str(Address(f"sip:{from_user}@{from_host}", "", {"tag": new_tag()}))
        session = InviteSession(self, call_id, "outbound", peer)
        self.sessions[call_id] = session
        return session, from_hdr


def _front_challenge(resp: SipResponse) -> bool:
    """Whether ``resp`` is the SIP front's own challenge (407, realm FRONT_REALM), not a trunk's passed back."""
    if resp.status != 407:
        return False
    try:
        return parse_digest(resp.headers.get("Proxy-Authenticate") or "").get("realm") == FRONT_REALM
    except ValueError:
        return False


def proxied_refusal(trunk: TrunkConfig, status: int, reason: str, *, from_front: bool = False) -> str:
    """Why a call through ``trunk``'s proxy (the cluster's SIP front) failed, in words that say what to fix;
    ``from_front``: the 407 is the front's own challenge to this node."""
    where = f"trunk {trunk.name} (through the SIP front {trunk.outbound_proxy})"
    secret_env = trunk.outbound_proxy_password_env or "the cluster's secret variable (cluster.secret_env)"
    if from_front:
        if trunk.outbound_proxy_password is None:
            return (f"the SIP front {trunk.outbound_proxy} asks this node for the cluster's secret ({status} {reason}) "
                    f"and {secret_env} is not set here: set it (cluster.secret_env names it) to the value Kamailio "
                    "has in its environment")
        return (f"the SIP front {trunk.outbound_proxy} did not accept this node's cluster secret ({status} {reason}): "
                f"{secret_env} must hold the same value here as in Kamailio's environment")
    if status == 403 and reason == WRONG_SECRET:
        return (f"the SIP front {trunk.outbound_proxy} refused this node's cluster secret: {secret_env} must hold the "
                "same value here as in Kamailio's environment")
    if status == 503 and reason == NO_SECRET_AT_FRONT:
        return (f"the SIP front {trunk.outbound_proxy} has no cluster secret: set {secret_env} in Kamailio's "
                "environment (the same value as the nodes') and restart it")
    if status in (401, 407):
        if not (trunk.username and trunk.password_env):
            return (f"{where} asks for a password ({status} {reason}) and has none: set the trunk's username and "
                    "password_env, and that variable in the SIP front's (Kamailio's) environment")
        return (f"{where} did not accept the SIP front's credentials ({status} {reason}): check the trunk's username "
                f"{trunk.username!r} and the password in {trunk.password_env} in the SIP front's (Kamailio's) "
                "environment")
    if status == 403 and reason == FRONT_REFUSED:
        return (f"the SIP front {trunk.outbound_proxy} does not take calls out from this address: only its nodes "
                "(the addresses in its dispatcher list) may call out through its trunks")
    if status == 403:
        return (f"{where} refused the call ({status} {reason}): if the trunk checks a password, check the username "
                f"and the password in {trunk.password_env or 'its password_env'} where Kamailio runs")
    if status == 404 and reason == NO_SUCH_TRUNK:
        return f"the SIP front {trunk.outbound_proxy} knows no trunk {trunk.name}: regenerate its configuration"
    return f"{where}: {status} {reason}"


def _record_route(invite: SipRequest) -> list[tuple[str, str]]:
    """The INVITE's Record-Route, copied into the responses that make the dialog (RFC 3261 §12.1.1), so the
    caller's in-dialog requests pass the proxies in front of us (Kamailio) too."""
    return [("Record-Route", route) for route in invite.headers.get_all("Record-Route")]


def _caller_identity(req: SipRequest, trusted: TrunkConfig | None) -> Address:
    """Who the caller is: P-Asserted-Identity (RFC 3325) only from a trunk trusted by its address, else From."""
    pai = req.headers.get("P-Asserted-Identity")
    if pai and trusted is not None and trusted.trust_asserted_identity:
        try:
            return Address.parse(split_list(pai)[0])  # the first of a sip: and tel: pair
        except ValueError:
            log.warning("call %s: unreadable P-Asserted-Identity %r; using From", req.call_id, pai[:80])
    return req.from_addr


def _info_dtmf(req: SipRequest) -> str | None:
    """The key of a SIP INFO application/dtmf-relay body (``Signal=5``), else None."""
    if (req.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/dtmf-relay":
        return None
    for line in req.body.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition("=")
        if name.strip().lower() == "signal" and len(value.strip()) == 1 and value.strip() in "0123456789*#ABCD":
            return value.strip()
    return None
