"""SIP transactions (RFC 3261 §17, with the Accepted state of RFC 6026).

A transaction owns retransmission and timeouts of one request/response exchange. It sends through a
``send(bytes)`` callable and schedules timers on the running asyncio loop; nothing here reads a socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from telephony.sip.message import Headers, SipRequest, SipResponse

log = logging.getLogger(__name__)


@dataclass
class Timers:
    """RFC 3261 timer base values in seconds (tests shorten them)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


Send = Callable[[bytes], None]


class _Transaction:
    """What server and client transactions share: the request, its transport and timers (RFC 3261 section 17)."""

    state: str

    def __init__(self, request: SipRequest, send: Send, reliable: bool, timers: Timers,
                 on_terminated: Callable[..., object]):
        self.request = request
        self.send = send
        self.reliable = reliable
        self.timers = timers
        self.on_terminated = on_terminated
        self.is_invite = request.method == "INVITE"
        self._handles: list[asyncio.TimerHandle] = []
        self._interval = timers.t1

    def _terminate(self) -> None:
        self.state = "terminated"
        self._cancel()
        self.on_terminated(self)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        self._handles.append(asyncio.get_running_loop().call_later(delay, fn))

    def _cancel(self) -> None:
        for h in self._handles:
            h.cancel()
        self._handles.clear()


class ServerTransaction(_Transaction):
    """Server side of one request: answers retransmissions with the last response, retransmits finals."""

    def __init__(self, request: SipRequest, send: Send, reliable: bool, timers: Timers,
                 on_terminated: Callable[[ServerTransaction], object]):
        super().__init__(request, send, reliable, timers, on_terminated)
        self.state = "proceeding" if self.is_invite else "trying"
        self.last_response: SipResponse | None = None
        self.on_no_ack: Callable[[], object] | None = None

    def respond(self, response: SipResponse) -> None:
        """Send a response and move the state machine; responses after a final one are ignored."""
        if self.state not in ("trying", "proceeding"):
            return
        self.last_response = response
        self.send(response.to_bytes())
        if response.status < 200:
            self.state = "proceeding"
            return
        t1 = self.timers.t1
        if self.is_invite:
            # Non-2xx waits for the ACK in this transaction; 2xx waits for the end-to-end ACK (RFC 6026).
            self.state = "accepted" if response.status < 300 else "completed"
            if not self.reliable or response.status < 300:
                self._later(self._interval, self._retransmit)
            self._later(64 * t1, self._timeout)
        else:
            self.state = "completed"
            self._later(0 if self.reliable else 64 * t1, self._terminate)

    def receive(self, request: SipRequest) -> None:
        """A retransmission of our request, or the ACK of a non-2xx final response."""
        if request.method == "ACK":
            if self.state == "completed":
                self.state = "confirmed"
                self._cancel()
                self._later(0 if self.reliable else self.timers.t4, self._terminate)
            return
        if self.last_response is not None and self.state in ("proceeding", "completed", "accepted", "trying"):
            self.send(self.last_response.to_bytes())

    def ack_received(self) -> None:
        """The dialog got the ACK of our 2xx: stop retransmitting it."""
        if self.state == "accepted":
            self._cancel()
            # Stay to absorb INVITE retransmissions, without resending the 2xx on a timer.
            self.state = "confirmed"
            self._later(64 * self.timers.t1 if not self.reliable else 0, self._terminate)

    def _retransmit(self) -> None:
        if self.state not in ("completed", "accepted") or self.last_response is None:
            return
        self.send(self.last_response.to_bytes())
        self._interval = min(self._interval * 2, self.timers.t2)
        self._later(self._interval, self._retransmit)

    def _timeout(self) -> None:
        if self.state in ("accepted", "completed"):
            if self.state == "accepted" and self.on_no_ack:
                self.on_no_ack()
            self._terminate()


class ClientTransaction(_Transaction):
    """Client side of one request: retransmits until answered, resolves :attr:`final` with the response.

    A timeout resolves ``final`` with a locally generated 408. Provisional responses go to ``on_provisional``;
    2xx retransmissions to an INVITE after the first go to ``on_2xx_retransmit`` (the dialog re-sends ACK).
    """

    def __init__(self, request: SipRequest, send: Send, reliable: bool, timers: Timers,
                 on_terminated: Callable[[ClientTransaction], object]):
        super().__init__(request, send, reliable, timers, on_terminated)
        self.state = "calling" if self.is_invite else "trying"
        self.final: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self.on_provisional: Callable[[SipResponse], None] | None = None
        self.on_2xx_retransmit: Callable[[SipResponse], None] | None = None
        self._ack: bytes | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.request.top_via.branch, self.request.method)

    def abandon(self) -> None:
        """Stop retransmitting and forget the request (nothing came back, so there is nothing to CANCEL)."""
        self._terminate()

    def start(self) -> None:
        self.send(self.request.to_bytes())
        if not self.reliable:
            self._later(self._interval, self._retransmit)
        self._later(64 * self.timers.t1, self._timeout)

    def receive(self, response: SipResponse) -> None:
        if self.state in ("terminated",):
            return
        if response.status < 200:
            if self.state in ("calling", "trying"):
                self.state = "proceeding"
            if self.on_provisional:
                self.on_provisional(response)
            return
        if self.state == "completed":
            if self._ack is not None:
                self.send(self._ack)  # our ACK of a non-2xx was lost
            return
        if self.state == "accepted":
            if response.status < 300 and self.on_2xx_retransmit:
                self.on_2xx_retransmit(response)
            return
        self._cancel()
        if not self.final.done():
            self.final.set_result(response)
        if self.is_invite and response.status < 300:
            self.state = "accepted"
            self._later(64 * self.timers.t1, self._terminate)
        elif self.is_invite:
            self.state = "completed"
            self._ack = self._make_ack(response).to_bytes()
            self.send(self._ack)
            self._later(0 if self.reliable else 32.0, self._terminate)
        else:
            self.state = "completed"
            self._later(0 if self.reliable else self.timers.t4, self._terminate)

    def _make_ack(self, response: SipResponse) -> SipRequest:
        """ACK of a non-2xx final: same branch and Request-URI, the response's To (RFC 3261 §17.1.1.3)."""
        h = Headers()
        h.add("Via", self.request.headers.get_all("Via")[0])
        for name in ("Route",):
            for v in self.request.headers.get_all(name):
                h.add(name, v)
        h.add("Max-Forwards", "70")
        h.add("From", self.request.headers.get("From") or "")
        h.add("To", response.headers.get("To") or "")
        h.add("Call-ID", self.request.call_id)
        h.add("CSeq", f"{self.request.cseq.number} ACK")
        return SipRequest(headers=h, method="ACK", uri=self.request.uri)

    def _retransmit(self) -> None:
        # A provisional stops INVITE retransmission (timer A); non-INVITE keeps going at T2 (timer E).
        if self.state not in (("calling",) if self.is_invite else ("trying", "proceeding")):
            return
        self.send(self.request.to_bytes())
        self._interval = self._interval * 2 if self.is_invite else min(self._interval * 2, self.timers.t2)
        self._later(self._interval, self._retransmit)

    def _timeout(self) -> None:
        # Timer B stops mattering once an INVITE is ringing: the caller's own ring timeout CANCELs it.
        if self.is_invite and self.state == "proceeding":
            return
        if self.state in ("calling", "trying", "proceeding") and not self.final.done():
            self.final.set_result(SipResponse(status=408, reason="Request Timeout (no response)"))
        self._terminate()

