"""Connect two call legs: each hears the other, key presses pass through, until one side hangs up."""

from __future__ import annotations

import asyncio
import logging

from telephony.leg import AudioSink, KeyListener, Leg

log = logging.getLogger(__name__)


class Bridge:
    """Audio and DTMF of ``a`` go to ``b`` and back, through sinks and key listeners the bridge adds to both
    legs; :meth:`stop` removes them. With ``hangup_together`` the end of one leg hangs up the other."""

    def __init__(self, a: Leg, b: Leg, hangup_together: bool = True):
        self.a, self.b = a, b
        self.hangup_together = hangup_together
        self._audio_a, self._audio_b = self._forward(b), self._forward(a)
        self._dtmf_a, self._dtmf_b = self._dtmf_to(b), self._dtmf_to(a)
        a.add_sink(self._audio_a)
        b.add_sink(self._audio_b)
        a.add_dtmf_listener(self._dtmf_a)
        b.add_dtmf_listener(self._dtmf_b)
        self.active = True
        self._watch = asyncio.create_task(self._watch_ends())

    @staticmethod
    def _forward(to: Leg) -> AudioSink:
        def send(pcm: bytes) -> None:
            to.write(pcm)  # drops a backlog (the legs' clocks drift) rather than let the delay grow
        return send

    @staticmethod
    def _dtmf_to(to: Leg) -> KeyListener:
        def send(key: str) -> None:
            if to.state == "answered" and to.can_send_dtmf:
                to.send_dtmf(key)
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
        """Disconnect the legs (each keeps its call and its other listeners)."""
        if not self.active:
            return
        self.active = False
        self.a.remove_sink(self._audio_a)
        self.b.remove_sink(self._audio_b)
        self.a.remove_dtmf_listener(self._dtmf_a)
        self.b.remove_dtmf_listener(self._dtmf_b)

    async def wait(self) -> None:
        """Until one leg ended (and, with ``hangup_together``, the other was hung up)."""
        await self._watch
