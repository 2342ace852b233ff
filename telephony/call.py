"""A call leg: one SIP INVITE session with its RTP stream, as the rest of the product sees it.

It implements :class:`telephony.leg.Leg` (audio in :mod:`audio.pcm` frames); key presses also stay in
:attr:`CallLeg.dtmf`. A leg is created by :class:`telephony.sip.ua.UserAgent` (inbound INVITE or
:meth:`UserAgent.dial`); the signalling is its :class:`~telephony.sip.invite.InviteSession`, which tells the
leg what media was negotiated.
"""

from __future__ import annotations

import asyncio
import logging

from telephony.config import DidRoute, TrunkConfig
from telephony.leg import CallError, LegBase
from telephony.rtp.session import RtpSession
from telephony.sdp import Negotiated
from telephony.sip.dialog import Dialog
from telephony.sip.invite import InviteSession

log = logging.getLogger(__name__)


NO_MEDIA = "no media"  # the end reason of a call whose peer stopped sending RTP (sip.no_media_timeout_s)


class CallLeg(LegBase):
    """One call with one peer. ``state`` goes ringing -> answered -> ended (or ringing -> ended)."""

    channel = "sip"

    def __init__(self, session: InviteSession, rtp: RtpSession, *, caller: str | None, caller_name: str,
                 dialled: str | None, trunk: TrunkConfig | None, route: DidRoute | None = None):
        super().__init__()
        self.session = session
        self.call_id = session.call_id
        self.direction = session.direction  # "inbound" or "outbound"
        self.peer = session.peer
        self.rtp = rtp
        self.caller = caller
        self.caller_name = caller_name
        self.dialled = dialled
        self.trunk = trunk
        self.route = route
        self.end_reason = ""
        self.answered = asyncio.Event()
        self.ended = asyncio.Event()
        self.dtmf: asyncio.Queue[str] = asyncio.Queue()
        rtp.on_audio = self._audio_in
        rtp.on_dtmf = self._dtmf_in
        rtp.on_no_media = self._no_media
        session.attach(self)

    def __repr__(self) -> str:
        return f"<CallLeg {self.direction} {self.call_id} {self.caller}->{self.dialled} {self.state}>"

    @property
    def state(self) -> str:
        """One of ringing, answered, ended."""
        return self.session.state

    @property
    def dialog(self) -> Dialog | None:
        """The SIP dialog once the call is answered."""
        return self.session.dialog

    @property
    def remote_hold(self) -> bool:
        """The peer put us on hold."""
        return self.session.remote_hold

    @property
    def local_hold(self) -> bool:
        """We put the peer on hold."""
        return self.session.local_hold

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
    def media_idle_s(self) -> float:
        """Seconds without RTP from the peer while it should send (0 on hold)."""
        return self.rtp.media_idle_s if self.state == "answered" else 0.0

    @property
    def can_send_dtmf(self) -> bool:
        return self.rtp.dtmf_pt is not None

    def send_dtmf(self, keys: str) -> None:
        """Send key presses as RFC 4733 events. Raises CallError if the peer did not offer telephone-event."""
        if self.rtp.dtmf_pt is None:
            raise CallError("the peer does not accept RFC 4733 telephone-events")
        self.rtp.send_dtmf(keys)

    async def answer(self) -> None:
        """Answer a ringing inbound call (200 OK with our SDP) and return once the caller acknowledged it (the
        audio starts flowing then) or the call ended without an ACK (``state`` is then "ended")."""
        self.session.answer()
        await self.answered.wait()
        if self.state == "answered":
            log.info("call %s answered (%s -> %s)", self.call_id, self.caller, self.dialled)

    async def reject(self, status: int = 486, reason: str = "") -> None:
        """Refuse a ringing inbound call with a final error response."""
        await self.session.reject(status, reason)

    async def hangup(self) -> None:
        """End the call whatever its state: BYE when answered, CANCEL or an error response while ringing."""
        await self.session.hangup()

    async def hold(self) -> None:
        """Put the peer on hold (re-INVITE with a=sendonly); our audio stops."""
        await self.session.reinvite("sendonly")
        self.rtp.sending = False
        self.rtp.expect_media = False  # a held peer may fall silent

    async def unhold(self) -> None:
        """Take the peer off hold (re-INVITE with a=sendrecv)."""
        await self.session.reinvite("sendrecv")
        self.rtp.sending = not self.remote_hold
        self.rtp.expect_media = not self.remote_hold

    async def transfer(self, target: str, timeout: float = 30.0) -> int:
        """Blind transfer (RFC 3515): ask the peer to call ``target`` with REFER. Returns the final status
        of the peer's new call as reported by its NOTIFY (200 = transferred), or 202 if the peer accepted
        but did not report in time. Raises CallError if REFER is refused."""
        return await self.session.refer(target, timeout)

    # --- driven by the RTP session ---------------------------------------------------------------------------
    def _audio_in(self, pcm: bytes) -> None:
        self._audio_to_sinks(pcm)

    def _no_media(self) -> None:
        log.warning("call %s: no RTP from the peer for %.0f s; hanging up", self.call_id, self.rtp.no_media_timeout_s)
        self.session.endpoint.spawn(self.session.hangup(NO_MEDIA))

    def _dtmf_in(self, key: str) -> None:
        log.debug("call %s: a keypad key", self.call_id)  # which key is never logged: it may be part of a PIN
        self.dtmf.put_nowait(key)  # keys come by RFC 4733 or SIP INFO
        self._tell_key_listeners(key)

    # --- driven by the INVITE session (SessionOwner) ---------------------------------------------------------
    def media_negotiated(self, negotiated: Negotiated) -> None:
        n = negotiated
        self.rtp.configure(n.codec, n.dtmf_pt, (n.remote_address, n.remote_port), n.srtp)
        self.rtp.sending = not (self.remote_hold or self.local_hold or n.remote_direction == "inactive")
        self.rtp.expect_media = not (self.remote_hold or self.local_hold or n.remote_direction == "recvonly")

    def session_answered(self) -> None:
        self.rtp.start()
        self.answered.set()

    def session_dtmf(self, key: str) -> None:
        self._dtmf_in(key)

    async def session_ended(self, reason: str) -> None:
        self.end_reason = reason
        st = self.rtp.stats
        log.info("call %s ended: %s (RTP sent %d, received %d, largest gap sent %.0f ms / received %.0f ms)",
                 self.call_id, reason, st.sent, st.received, st.max_send_gap_ms, st.max_receive_gap_ms)
        await self.rtp.close()
        self.ended.set()
        self.answered.set()  # wake anyone still waiting for an answer that will not come
