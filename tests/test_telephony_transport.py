"""The pipecat transport of a SIP leg in a real pipecat pipeline: caller audio arrives as InputAudioRawFrame,
key presses as InputDTMFFrame, and OutputAudioRawFrame is played back to the caller over RTP."""

from __future__ import annotations

import asyncio

import numpy as np
from net_helpers import free_port, rtp_ports
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    OutputAudioRawFrame,
    OutputDTMFUrgentFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from telephony.call import CallLeg
from telephony.config import SipConfig
from telephony.sip.ua import UserAgent
from telephony.transport import SipCallTransport


class Echo(FrameProcessor):
    """Plays the caller's audio back unchanged and answers every key press with a 7."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []
        self.audio_frames = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.audio_frames += 1
            assert frame.sample_rate == 16000 and frame.num_channels == 1
            await self.push_frame(OutputAudioRawFrame(frame.audio, frame.sample_rate, 1), direction)
        elif isinstance(frame, InputDTMFFrame):
            self.keys.append(str(frame.button.value))
            await self.push_frame(OutputDTMFUrgentFrame.from_string("7"), direction)
        else:
            await self.push_frame(frame, direction)


def tone(hz: float, seconds: float) -> bytes:
    t = np.arange(int(16000 * seconds)) / 16000
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16).tobytes()


def loud_frames(chunks: list[bytes]) -> int:
    a = np.frombuffer(b"".join(chunks), np.int16).astype(np.float64)
    frames = a[: len(a) // 320 * 320].reshape(-1, 320)
    return int((np.sqrt((frames**2).mean(axis=1)) > 2000).sum()) if len(frames) else 0


def test_pipeline_over_a_sip_leg() -> None:
    heard: list[bytes] = []
    echo = Echo()
    events: list[str] = []

    async def bot(leg: CallLeg) -> None:
        transport = SipCallTransport(leg)

        @transport.event_handler("on_client_connected")
        async def connected(_t: object, _leg: object) -> None:
            events.append("connected")

        @transport.event_handler("on_client_disconnected")
        async def disconnected(_t: object, _leg: object) -> None:
            events.append("disconnected")
            await worker.queue_frame(EndFrame())

        worker = PipelineWorker(Pipeline([transport.input(), echo, transport.output()]),
                                params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=16000),
                                enable_rtvi=False, enable_turn_tracking=False, idle_timeout_secs=None)
        await leg.answer()
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()

    async def main() -> str:
        server = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None,
                                     **rtp_ports(100)), on_call=bot)
        phone = UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None,
                                    **rtp_ports(100)))
        await server.start()
        await phone.start()
        try:
            leg = await phone.dial(f"sip:bot@127.0.0.1:{server.transport.udp_address[1]}")
            leg.add_sink(heard.append)
            leg.send_dtmf("5")
            key = await asyncio.wait_for(leg.dtmf.get(), 10)
            await leg.write_audio(tone(900, 1.0))
            while leg.queued_ms > 0:
                await asyncio.sleep(0.02)
            # The echo passes two jitter buffers and the pipeline: wait until it has come back.
            for _ in range(250):
                if loud_frames(heard) >= 40:
                    break
                await asyncio.sleep(0.02)
            await leg.hangup()
            bot_legs = list(server.calls.values())
            for bot_leg in bot_legs:
                await asyncio.wait_for(bot_leg.ended.wait(), 5)
            return key
        finally:
            await phone.stop()
            await server.stop()

    key = asyncio.run(main())
    assert echo.keys == ["5"] and key == "7"
    assert echo.audio_frames > 50
    assert events[:1] == ["connected"]
    a = np.frombuffer(b"".join(heard), np.int16).astype(np.float64)
    frames = a[: len(a) // 320 * 320].reshape(-1, 320)
    loud = frames[np.sqrt((frames**2).mean(axis=1)) > 2000].reshape(-1)
    assert len(loud) >= 40 * 320
    spectrum = np.abs(np.fft.rfft(loud * np.hanning(len(loud))))
    assert abs(np.argmax(spectrum) * 16000 / len(loud) - 900) < 15
