"""Test helpers for driving pipeline stages (the dialog stage, the turn processor) without a transport: a recorder
of what the bot says, a thread pool standing in for the inference pool, and a runner for a pipeline and the
coroutine that drives it.

Imported inside the tests that use them (pipecat is heavy to import at collection)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pipecat.frames.frames import Frame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from voicebot.pipeline.frames import BotSayFrame


class ThreadPool:
    """The inference pool's interface (``SharedModels.run``): blocking work off the event loop."""

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(func, *args)


class SaidRecorder(FrameProcessor):
    """What the caller would hear, in order: every :class:`BotSayFrame` passing through (passed on unchanged)."""

    def __init__(self, timeout_s: float = 120.0) -> None:
        super().__init__()
        self.said: list[BotSayFrame] = []
        self._changed = asyncio.Event()
        self._timeout_s = timeout_s

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, BotSayFrame):
            self.said.append(frame)
            self._changed.set()
        await self.push_frame(frame, direction)

    async def until(self, n: int) -> BotSayFrame:
        """The ``n``-th thing said (1-based), once it has been said; fails after the recorder's timeout."""
        while len(self.said) < n:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), self._timeout_s)
        return self.said[n - 1]


async def run_pipeline(processors: Sequence[FrameProcessor],
                       drive: Callable[[PipelineWorker], Awaitable[None]]) -> None:
    """Run ``processors`` as one pipeline while ``drive(worker)`` queues frames into it; ``drive`` must end the
    pipeline (an ``EndFrame``)."""
    worker = PipelineWorker(Pipeline(list(processors)), enable_rtvi=False, enable_turn_tracking=False,
                            idle_timeout_secs=None)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), drive(worker))
