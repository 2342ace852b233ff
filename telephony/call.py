"""A call leg: one SIP dialog with its RTP stream, as the rest of the product sees it.

It implements :class:`telephony.leg.Leg` (audio in :mod:`audio.pcm` frames); key presses also stay in
:attr:`CallLeg.dtmf`.
A leg is created by :class:`telephony.sip.ua.UserAgent` (inbound INVITE or :meth:`UserAgent.dial`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from telephony.config import DidRoute, TrunkConfig
from telephony.leg import CallError, LegBase
from telephony.rtp.session import RtpSession
from telephony.sdp import AudioDescription, Negotiated, SdpError, answer, make_offer
from telephony.sip.dialog import Dialog
from telephony.sip.message import SipRequest, SipResponse, make_response
from telephony.sip.transaction import ClientTransaction, ServerTransaction
from telephony.sip.transport import Peer

if TYPE_CHECKING:
    from telephony.sip.ua import UserAgent

log = logging.getLogger(__name__)


class CallLeg(LegBase):
    """One call with one peer. ``state`` goes ringing -> answered -> ended (or ringing -> ended)."""

    channel = "sip"

    def __init__(self, ua: UserAgent, call_id: str, direction: str, peer: Peer, rtp: RtpSession, *,
                 caller: str | None, caller_name: str, dialled: str | None, trunk: TrunkConfig | None,
                 route: DidRoute | None = None):
        super().__init__()
        self.ua = ua
        self.call_id = call_id
        self.direction = direction  # "inbound" or "outbound"
        self.peer = peer
        self.rtp = rtp
        self.caller = caller
        self.caller_name = caller_name
        self.dialled = dialled
        self.trunk = trunk
        self.route = route
        self.state = "ringing"
        self.end_reason = ""
        self.dialog: Dialog | None = None
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self.dtmf: asyncio.Queue[str] = asyncio.Queue()
        self.remote_hold = False
        self.local_hold = False
        self._invite: SipRequest | None = None
        self._invite_tx: ServerTransaction | None = None
        self._outbound_tx: ClientTransaction | None = None  # our INVITE while an outbound call rings
        self._local_sdp: AudioDescription | None = None
        self._sdp_version = 0
        self._ack: bytes | None = None
        self._refer_result: asyncio.Future[int] | None = None
        self._reinvite_lock = asyncio.Lock()
        rtp.on_audio = self._audio_in
        rtp.on_dtmf = self._dtmf_in

    def __repr__(self) -> str:
        return f"<CallLeg {self.direction} {self.call_id} {self.caller}->{self.dialled} {self.state}>"

    # --- what the application uses --------------------------------------------------------------------------
    def _enqueue(self, pcm: bytes) -> None:
        self.rtp.write_nowait(pcm)

    async def _enqueue_paced(self, pcm: bytes) -> None:
        await self.rtp.write(pcm)  # the RTP clock wakes it when there is room

    @property
    def queued_ms(self) -> float:
        return self.rtp.queued_ms

    def clear_audio(self) -> None:
        """Stop what is being played (barge-in)."""
        self.rtp.clear_output()

    @property
    def can_send_dtmf(self) -> bool:
        return self.rtp.dtmf_pt is not None

    def send_dtmf(self, keys: str) -> None:
        """Send key presses as RFC 4733 events. Raises CallError if the peer did not offer telephone-event."""
        if self.rtp.dtmf_pt is None:
            raise CallError("the peer does not accept RFC 4733 telephone-events")
        self.rtp.send_dtmf(keys)

    async def answer(self) -> None:
        """Answer a ringing inbound call (200 OK with our SDP); the audio starts flowing."""
        if self.direction != "inbound" or self.state != "ringing" or self._invite_tx is None:
            raise CallError(f"cannot answer a {self.direction} call in state {self.state}")
        assert self._invite is not None and self._local_sdp is not None
        tx = self._invite_tx
        local_tag = self.ua.local_tag_for(self)
        contact = self.ua.contact(self.peer)
        self.dialog = Dialog.as_uas(self._invite, local_tag, contact)
        ok = make_response(self._invite, 200, to_tag=local_tag, body=self._local_sdp.to_bytes(),
                           extra=self.ua.standard_headers(self.peer) + [("Content-Type", "application/sdp")])
        tx.on_no_ack = lambda: self.ua.spawn(self._no_ack())
        tx.respond(ok)
        self.state = "answered"
        self.rtp.start()
        self.answered.set()
        log.info("call %s answered (%s -> %s)", self.call_id, self.caller, self.dialled)

    async def reject(self, status: int = 486, reason: str = "") -> None:
        """Refuse a ringing inbound call with a final error response."""
        if self.state != "ringing" or self._invite_tx is None or self._invite is None:
            raise CallError(f"cannot reject a call in state {self.state}")
        self._invite_tx.respond(make_response(self._invite, status, reason, to_tag=self.ua.local_tag_for(self)))
        await self._end(f"rejected {status}")

    async def hangup(self) -> None:
        """End the call whatever its state: BYE when answered, CANCEL or an error response while ringing."""
        if self.state == "ended":
            return
        if self.state == "ringing":
            if self.direction == "inbound":
                await self.reject(480, "Temporarily Unavailable")
            else:
                await self.ua.cancel(self)
            return
        assert self.dialog is not None
        await self._end("local hangup")
        bye = self.dialog.request("BYE", self.ua.via(self.peer), extra=self.ua.standard_headers(self.peer))
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(self.ua.request(bye, self.peer), 64 * self.ua.timers.t1 + 1)

    async def hold(self) -> None:
        """Put the peer on hold (re-INVITE with a=sendonly); our audio stops."""
        await self._reinvite("sendonly")
        self.local_hold = True
        self.rtp.sending = False

    async def unhold(self) -> None:
        """Take the peer off hold (re-INVITE with a=sendrecv)."""
        await self._reinvite("sendrecv")
        self.local_hold = False
        self.rtp.sending = not self.remote_hold

    async def transfer(self, target: str, timeout: float = 30.0) -> int:
        """Blind transfer (RFC 3515): ask the peer to call ``target`` with REFER. Returns the final status
        of the peer's new call as reported by its NOTIFY (200 = transferred), or 202 if the peer accepted
        but did not report in time. Raises CallError if REFER is refused."""
        if self.state != "answered" or self.dialog is None:
            raise CallError("only an answered call can be transferred")
        loop = asyncio.get_running_loop()
        self._refer_result = loop.create_future()
        refer = self.dialog.request("REFER", self.ua.via(self.peer), extra=self.ua.standard_headers(self.peer) + [
            ("Refer-To", f"<{target}>"), ("Referred-By", f"<{self.dialog.local_uri}>")])
        resp = await self.ua.request(refer, self.peer)
        if resp.status >= 300:
            raise CallError(f"transfer refused: {resp.status} {resp.reason}")
        try:
            return await asyncio.wait_for(asyncio.shield(self._refer_result), timeout)
        except TimeoutError:
            return 202

    # --- driven by the user agent ---------------------------------------------------------------------------
    def _audio_in(self, pcm: bytes) -> None:
        self._audio_to_sinks(pcm)

    def _dtmf_in(self, key: str) -> None:
        log.info("call %s: DTMF %s", self.call_id, key)
        self.dtmf.put_nowait(key)  # keys come by RFC 4733 or SIP INFO
        self._tell_key_listeners(key)

    async def _setup_inbound(self, invite: SipRequest, tx: ServerTransaction, offer: AudioDescription | None,
                             host: str, codecs: tuple[str, ...]) -> bool:
        """Prepare our SDP answer (or offer, if the INVITE had none) and ring. False if the call failed."""
        self._invite, self._invite_tx = invite, tx
        sid = self.ua.session_id()
        if offer is None:
            self._local_sdp = make_offer(host, self.rtp.local_port, sid, 0, codecs=codecs)
        else:
            try:
                self._local_sdp, negotiated = answer(offer, host, self.rtp.local_port, sid, 0, codecs)
            except SdpError as exc:
                tx.respond(make_response(invite, 488, to_tag=self.ua.local_tag_for(self),
                                         extra=[("Warning", f'304 voicebot "{exc}"')]))
                await self._end("no common codec")
                return False
            self._apply(negotiated)
        tx.respond(make_response(invite, 180, to_tag=self.ua.local_tag_for(self),
                                 extra=[("Contact", f"<{self.ua.contact(self.peer)}>")]))
        return True

    def _apply(self, n: Negotiated) -> None:
        self.rtp.configure(n.codec, n.dtmf_pt, (n.remote_address, n.remote_port))
        self.remote_hold = n.remote_direction in ("sendonly", "inactive") or n.remote_address == "0.0.0.0"
        self.rtp.sending = not (self.remote_hold or self.local_hold or n.remote_direction == "inactive")

    def _on_ack(self, ack: SipRequest) -> None:
        if self._invite_tx is not None:
            self._invite_tx.ack_received()
        if ack.body and self._local_sdp is not None and self._invite is not None and not self._invite.body:
            # Late offer: the answer to the offer in our 200 arrives in the ACK.
            from telephony.sdp import accept_answer

            try:
                self._apply(accept_answer(self._local_sdp, AudioDescription.parse(ack.body)))
            except SdpError as exc:
                log.warning("call %s: unusable SDP in ACK (%s); hanging up", self.call_id, exc)
                self.ua.spawn(self.hangup())

    async def _no_ack(self) -> None:
        if self.state == "answered":
            log.warning("call %s: our 200 OK was never acknowledged; hanging up", self.call_id)
            await self.hangup()

    def _cancelled(self) -> None:
        """The caller gave up before we answered (CANCEL)."""
        if self.state == "ringing" and self._invite_tx is not None and self._invite is not None:
            self._invite_tx.respond(make_response(self._invite, 487, to_tag=self.ua.local_tag_for(self)))
        self.ua.spawn(self._end("cancelled"))

    def _on_request(self, req: SipRequest, tx: ServerTransaction) -> None:
        """An in-dialog request from the peer (after CSeq and tag checks)."""
        std = self.ua.standard_headers(self.peer)
        if req.method == "BYE":
            tx.respond(make_response(req, 200, extra=std))
            self.ua.spawn(self._end("remote hangup"))
        elif req.method == "INVITE":
            self._on_reinvite(req, tx)
        elif req.method == "INFO":
            key = _info_dtmf(req)
            if key:
                self._dtmf_in(key)
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
            from telephony.sip.message import Address

            self.dialog.remote_target = Address.parse(req.headers.get_all("Contact")[0]).uri
        local = self._local_sdp
        self._sdp_version += 1
        if req.body:
            try:
                offer = AudioDescription.parse(req.body)
                codecs = (self.rtp.codec.name,) + tuple(c for c in ("PCMU", "PCMA") if c != self.rtp.codec.name)
                local, negotiated = answer(offer, local.address, local.port, local.session_id, self._sdp_version,
                                           codecs, hold=self.local_hold)
            except SdpError as exc:
                tx.respond(make_response(req, 488, extra=[("Warning", f'304 voicebot "{exc}"')]))
                return
            self._apply(negotiated)
            log.info("call %s: %s", self.call_id, "on hold" if self.remote_hold else "off hold")
        else:
            local.session_version = self._sdp_version
        self._local_sdp = local
        ok = make_response(req, 200, body=local.to_bytes(),
                           extra=self.ua.standard_headers(self.peer) + [("Content-Type", "application/sdp")])
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

    async def _reinvite(self, direction: str) -> None:
        if self.state != "answered" or self.dialog is None or self._local_sdp is None:
            raise CallError("only an answered call can be put on hold")
        async with self._reinvite_lock:
            self._sdp_version += 1
            sdp = make_offer(self._local_sdp.address, self._local_sdp.port, self._local_sdp.session_id,
                             self._sdp_version, direction, codecs=(self.rtp.codec.name,),
                             dtmf_pt=self.rtp.dtmf_pt or 101)
            req = self.dialog.request("INVITE", self.ua.via(self.peer), sdp.to_bytes(), "application/sdp",
                                      extra=self.ua.standard_headers(self.peer))
            resp = await self.ua.request(req, self.peer)
            if 200 <= resp.status < 300:
                ack = self.dialog.request("ACK", self.ua.via(self.peer), cseq=req.cseq.number)
                self.ua.send(self.peer, ack.to_bytes())
                self._local_sdp = sdp
                if resp.body:
                    from telephony.sdp import accept_answer

                    try:
                        self._apply(accept_answer(sdp, AudioDescription.parse(resp.body)))
                    except SdpError as exc:
                        log.warning("call %s: bad SDP in re-INVITE answer: %s", self.call_id, exc)
            else:
                raise CallError(f"re-INVITE refused: {resp.status} {resp.reason}")

    def _answered_outbound(self, dialog: Dialog, response: SipResponse, offer: AudioDescription) -> None:
        from telephony.sdp import accept_answer

        self.dialog = dialog
        self._local_sdp = offer
        self._apply(accept_answer(offer, AudioDescription.parse(response.body)))
        self.state = "answered"
        self.rtp.start()
        self.answered.set()

    async def _end(self, reason: str) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        self.end_reason = reason
        st = self.rtp.stats
        log.info("call %s ended: %s (RTP sent %d, received %d, largest gap sent %.0f ms / received %.0f ms)",
                 self.call_id, reason, st.sent, st.received, st.max_send_gap_ms, st.max_receive_gap_ms)
        await self.rtp.close()
        self.ua.forget(self)
        self.ended.set()
        self.answered.set()  # wake anyone still waiting for an answer that will not come


def _info_dtmf(req: SipRequest) -> str | None:
    """The key of a SIP INFO application/dtmf-relay body (``Signal=5``), else None."""
    if (req.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/dtmf-relay":
        return None
    for line in req.body.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition("=")
        if name.strip().lower() == "signal" and len(value.strip()) == 1 and value.strip() in "0123456789*#ABCD":
            return value.strip()
    return None
