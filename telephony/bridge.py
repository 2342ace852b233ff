"""Connect two call legs: each hears the other, key presses pass through, until one side hangs up."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telephony.call import CallLeg

log = logging.getLogger(__name__)

# More queued audio than this on one side means the legs' clocks drift; drop rather than add delay.
MAX_QUEUED_MS = 200


class Bridge:
    """Audio and DTMF of ``a`` go to ``b`` and back. The bridge takes over both legs' audio callbacks;
    :meth:`stop` gives them back. With ``hangup_together`` the end of one leg hangs up the other."""

    def __init__(self, a: CallLeg, b: CallLeg, hangup_together: bool = True):
        self.a, self.b = a, b
        self.hangup_together = hangup_together
        self._saved = (a.on_audio, b.on_audio)
        a.on_audio = self._forward(b)
        b.on_audio = self._forward(a)
        self._dtmf_a = self._dtmf_to(b)
        self._dtmf_b = self._dtmf_to(a)
        a.add_dtmf_listener(self._dtmf_a)
        b.add_dtmf_listener(self._dtmf_b)
        self.active = True
        self._watch = asyncio.create_task(self._watch_ends())

    @staticmethod
    def _forward(to: CallLeg):  # type: ignore[no-untyped-def]
        def send(pcm: bytes) -> None:
            if to.state != "answered":
                return
            if to.rtp.queued_ms > MAX_QUEUED_MS:
                to.clear_audio()
            to.rtp.write_nowait(pcm)
        return send

    @staticmethod
    def _dtmf_to(to: CallLeg):  # type: ignore[no-untyped-def]
        def send(key: str) -> None:
            if to.state == "answered" and to.rtp.dtmf_pt is not None:
                to.rtp.send_dtmf(key)
        return send

    async def _watch_ends(self) -> None:
        done, _ = await asyncio.wait([asyncio.create_task(self.a.ended.wait()),
                                      asyncio.create_task(self.b.ended.wait())],
                                     return_when=asyncio.FIRST_COMPLETED)
        self.stop()
        if self.hangup_together:
            for leg in (self.a, self.b):
                if leg.state != "ended":
                    await leg.hangup()

    def stop(self) -> None:
        """Disconnect the legs (each keeps its call); their previous audio callbacks are restored."""
        if not self.active:
            return
        self.active = False
        self.a.on_audio, self.b.on_audio = self._saved
        self.a.remove_dtmf_listener(self._dtmf_a)
        self.b.remove_dtmf_listener(self._dtmf_b)

    async def wait(self) -> None:
        """Until one leg ended (and, with ``hangup_together``, the other was hung up)."""
        await self._watch
