"""Key presses as dialog input: collects the caller's RFC 4733 digits into one entry (an order number, a
PIN, a lone 0 for an agent) and pushes it as a :class:`KeypadInputFrame`.

An entry ends with ``#`` (not included), or when no key followed for ``inter_digit_s``. The individual
``InputDTMFFrame``s still pass through, so other processors can react to single keys.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pipecat.frames.frames import CancelFrame, DataFrame, EndFrame, Frame, InputDTMFFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor


@dataclass
class KeypadInputFrame(DataFrame):
    """One complete keypad entry, e.g. ``"40213"``; ``terminated`` is True if the caller ended it with #."""

    keys: str = ""
    terminated: bool = False


class KeypadCollector(FrameProcessor):
    """Turns a run of ``InputDTMFFrame``s into one ``KeypadInputFrame``."""

    def __init__(self, inter_digit_s: float = 2.0, max_keys: int = 32, **kwargs):
        super().__init__(**kwargs)
        self.inter_digit_s = inter_digit_s
        self.max_keys = max_keys
        self._keys = ""
        self._timer: asyncio.TimerHandle | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputDTMFFrame):
            await self.push_frame(frame, direction)
            key = str(frame.button.value)
            if key == "#":
                await self._flush(terminated=True)
            else:
                self._keys += key
                if len(self._keys) >= self.max_keys:
                    await self._flush(terminated=False)
                else:
                    self._restart_timer()
            return
        if isinstance(frame, (EndFrame, CancelFrame)):
            self._cancel_timer()
        await self.push_frame(frame, direction)

    def _restart_timer(self) -> None:
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.inter_digit_s, lambda: self.create_task(self._flush(terminated=False)))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _flush(self, terminated: bool) -> None:
        self._cancel_timer()
        if self._keys or terminated:
            keys, self._keys = self._keys, ""
            await self.push_frame(KeypadInputFrame(keys=keys, terminated=terminated))
