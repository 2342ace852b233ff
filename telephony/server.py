"""The SIP side of ``voicebot serve``: a user agent whose inbound calls each get a pipecat transport and
are handed to the application's ``run_call``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from telephony.call import CallLeg
from telephony.config import SipConfig, TrunkConfig
from telephony.sip.ua import CallHandler, UserAgent
from telephony.transport import SipCallTransport

log = logging.getLogger(__name__)

RunCall = Callable[[CallLeg, SipCallTransport], Awaitable[None]]


class SipServer:
    """Answers every accepted inbound call and runs ``run_call(leg, transport)`` until it returns; the leg
    is hung up afterwards if the application left it up."""

    def __init__(self, sip: SipConfig, trunks: list[TrunkConfig], run_call: RunCall):
        self.run_call = run_call
        self.ua = UserAgent(sip, trunks, on_call=self._on_call)
        self.routes: list[tuple[Callable[[CallLeg], bool], CallHandler]] = []

    def add_route(self, matches: Callable[[CallLeg], bool], handler: CallHandler) -> None:
        """Hand inbound calls ``matches`` accepts to ``handler`` (still ringing: it answers or rejects them)
        instead of answering them for ``run_call``."""
        self.routes.append((matches, handler))

    async def start(self) -> None:
        """Bind the SIP listeners (raises OSError, e.g. port in use) and start trunk registrations."""
        await self.ua.start()

    async def stop(self) -> None:
        await self.ua.stop()

    async def _on_call(self, leg: CallLeg) -> None:
        for matches, handler in self.routes:
            if matches(leg):
                await handler(leg)
                return
        transport = SipCallTransport(leg)
        await leg.answer()
        if leg.state == "ended":
            return  # never acknowledged: no pipeline for a call that was not established
        try:
            await self.run_call(leg, transport)
        finally:
            if leg.state != "ended":
                await leg.hangup()
