"""Keypad entries from DTMF frames in a pipecat pipeline: '#' ends an entry, a pause ends it too."""

from __future__ import annotations

import asyncio

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import EndFrame, Frame, InputDTMFFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from telephony.keypad import KeypadCollector, KeypadInputFrame


class Sink(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.entries: list[tuple[str, bool]] = []
        self.keys = 0
        self.got = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, KeypadInputFrame):
            self.entries.append((frame.keys, frame.terminated))
            self.got.set()
        elif isinstance(frame, InputDTMFFrame):
            self.keys += 1
        await self.push_frame(frame, direction)


def test_entries_end_with_pound_or_a_pause() -> None:
    sink = Sink()

    async def main() -> None:
        worker = PipelineWorker(Pipeline([KeypadCollector(inter_digit_s=0.2), sink]), params=PipelineParams(),
                                enable_rtvi=False, enable_turn_tracking=False, idle_timeout_secs=None)
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        run = asyncio.create_task(runner.run())
        for key in "4021#":
            await worker.queue_frame(InputDTMFFrame(button=KeypadEntry(key)))
        await asyncio.wait_for(sink.got.wait(), 5)
        sink.got.clear()
        await worker.queue_frame(InputDTMFFrame(button=KeypadEntry("0")))  # "press 0 for an agent"
        await asyncio.wait_for(sink.got.wait(), 5)  # ends after the inter-digit pause
        await worker.queue_frame(EndFrame())
        await asyncio.wait_for(run, 10)

    asyncio.run(main())
    assert sink.entries == [("4021", True), ("0", False)]
    assert sink.keys == 6  # single keys still pass through
