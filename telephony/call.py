"""A call leg: one SIP INVITE session with its RTP stream, as the rest of the product sees it.

Audio in and out is 16 kHz 16-bit mono PCM in 20 ms frames. Key presses arrive in :attr:`CallLeg.dtmf`.
A leg is created by :class:`telephony.sip.ua.UserAgent` (inbound INVITE or :meth:`UserAgent.dial`); the
signalling is its :class:`~telephony.sip.invite.InviteSession`, which tells the leg what media was negotiated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from telephony.config import DidRoute, TrunkConfig
from telephony.rtp.session import RtpSession
from telephony.sdp import Negotiated
from telephony.sip.dialog import Dialog
from telephony.sip.invite import CallError, InviteSession

if TYPE_CHECKING:
    from telephony.bridge import Bridge

log = logging.getLogger(__name__)


class KeyListeners:
    """The keypad part of the call-leg surface: who hears the keys the peer presses. Subclasses set
    ``self._dtmf_listeners = []`` in ``__init__``."""

    call_id: str
    _dtmf_listeners: list[Callable[[str], None]]

    def add_dtmf_listener(self, fn: Callable[[str], None]) -> None:
        """``fn(key)`` is called for every key the peer presses."""
        self._dtmf_listeners.append(fn)

    def remove_dtmf_listener(self, fn: Callable[[str], None]) -> None:
        if fn in self._dtmf_listeners:
            self._dtmf_listeners.remove(fn)

    def _tell_key_listeners(self, key: str) -> None:
        for fn in list(self._dtmf_listeners):
            try:
                fn(key)
            except Exception:  # one broken listener must not keep the key from the others
                log.exception("call %s: key listener failed", self.call_id)


class CallLeg(KeyListeners):
    """One call with one peer. ``state`` goes ringing -> answered -> ended (or ringing -> ended)."""

    channel = "sip"

    def __init__(self, session: InviteSession, rtp: RtpSession, *, caller: str | None, caller_name: str,
                 dialled: str | None, trunk: TrunkConfig | None, route: DidRoute | None = None):
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
        self._on_audio: Callable[[bytes], None] | None = None
        self._dtmf_listeners: list[Callable[[str], None]] = []
        rtp.on_audio = self._audio_in
        rtp.on_dtmf = self._dtmf_in
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
    @property
    def on_audio(self) -> Callable[[bytes], None] | None:
        """Called with every 20 ms of caller audio (16 kHz PCM) once the call is answered."""
        return self._on_audio

    @on_audio.setter
    def on_audio(self, fn: Callable[[bytes], None] | None) -> None:
        self._on_audio = fn

    async def write_audio(self, pcm16k: bytes) -> None:
        """Play 16 kHz PCM to the peer; returns when it is queued (waits while ~80 ms are already queued)."""
        if self.state != "ended":
            await self.rtp.write(pcm16k)

    def clear_audio(self) -> None:
        """Stop what is being played (barge-in)."""
        self.rtp.clear_output()

    def send_dtmf(self, keys: str) -> None:
        """Send key presses as RFC 4733 events. Raises CallError if the peer did not offer telephone-event."""
        if self.rtp.dtmf_pt is None:
            raise CallError("the peer does not accept RFC 4733 telephone-events")
        self.rtp.send_dtmf(keys)

    async def answer(self) -> None:
        """Answer a ringing inbound call (200 OK with our SDP); the audio starts flowing."""
        self.session.answer()
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

    async def unhold(self) -> None:
        """Take the peer off hold (re-INVITE with a=sendrecv)."""
        await self.session.reinvite("sendrecv")
        self.rtp.sending = not self.remote_hold

    async def transfer(self, target: str, timeout: float = 30.0) -> int:
        """Blind transfer (RFC 3515): ask the peer to call ``target`` with REFER. Returns the final status
        of the peer's new call as reported by its NOTIFY (200 = transferred), or 202 if the peer accepted
        but did not report in time. Raises CallError if REFER is refused."""
        return await self.session.refer(target, timeout)

    def bridge(self, other: CallLeg) -> Bridge:
        """Connect this leg's audio and DTMF with ``other``'s, both ways, until one of them ends."""
        from telephony.bridge import Bridge

        return Bridge(self, other)

    async def wait_ended(self) -> str:
        await self.ended.wait()
        return self.end_reason

    # --- driven by the RTP session ---------------------------------------------------------------------------
    def _audio_in(self, pcm: bytes) -> None:
        if self._on_audio is not None and self.state == "answered":
            self._on_audio(pcm)

    def _dtmf_in(self, key: str) -> None:
        log.info("call %s: DTMF %s", self.call_id, key)
        self.dtmf.put_nowait(key)  # keys come by RFC 4733 or SIP INFO
        self._tell_key_listeners(key)

    # --- driven by the INVITE session (SessionOwner) ---------------------------------------------------------
    def media_negotiated(self, negotiated: Negotiated) -> None:
        n = negotiated
        self.rtp.configure(n.codec, n.dtmf_pt, (n.remote_address, n.remote_port))
        self.rtp.sending = not (self.remote_hold or self.local_hold or n.remote_direction == "inactive")

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
