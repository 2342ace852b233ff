"""Assembly of one call's pipeline over any pipecat transport (WebRTC here, SIP in telephony/).

    transport.input() -> MonitorTap (caller)
      -> CallerTurnProcessor (VAD, speculative STT, end of turn, barge-in) -> KeypadCollector
      -> DialogStage (dialog engine) -> PiperSpeech (TTS) -> transport.output() -> MonitorTap (bot) -> CallControl

The monitor taps give supervisors listening in the caller's and the bot's audio (voicebot.monitor).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.workers.runner import WorkerRunner

from audio import pcm
from telephony.keypad import KeypadCollector
from voicebot.config import Settings
from voicebot.pipeline.call import CallContext
from voicebot.pipeline.control import CallControl, HandoffHandler
from voicebot.pipeline.dialog import DialogStage, SignalSource
from voicebot.pipeline.frames import GreetFrame, ResumeFrame
from voicebot.pipeline.monitor import MonitorTap
from voicebot.pipeline.shared import SharedModels
from voicebot.pipeline.tts import PiperSpeech
from voicebot.pipeline.turns import CallerTurnProcessor, TurnParams
from voicebot.storage import CallStore

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession

log = logging.getLogger(__name__)


class CallTransport(Protocol):
    """What a call pipeline needs of its transport: a pipecat ``BaseTransport``, or stages around one."""

    def input(self) -> FrameProcessor: ...

    def output(self) -> FrameProcessor: ...


@dataclass
class CallPipeline:
    """A built call: run it, greet when the caller's media is up, end it when the caller leaves."""

    pipeline: Pipeline
    worker: PipelineWorker
    call: CallContext

    async def greet(self) -> None:
        """Queue the greeting; call from the transport's ``on_client_connected``."""
        await self.worker.queue_frame(GreetFrame())

    async def resume(self) -> None:
        """Queue taking the call back (a pipeline built for a call handed back to the bot) instead of the greeting."""
        await self.worker.queue_frame(ResumeFrame())

    async def caller_left(self) -> None:
        """The caller hung up or dropped: stop at once (the record is closed when ``run`` returns)."""
        if self.call.end_reason is None:
            self.call.end_reason = "caller_hangup"
        await self.worker.cancel(reason="caller_hangup")

    async def run(self) -> None:
        """Run the call until it ends, then close its dialog session and record (whatever went wrong)."""
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        try:
            await runner.run()
        except Exception:
            log.exception("call %s failed", self.call.call_id)
            self.call.end_reason = self.call.end_reason or "error"
            raise
        finally:
            await self.call.finish(self.call.end_reason or "caller_hangup")


def build_call_pipeline(
    transport: CallTransport,
    session: DialogSession,
    shared: SharedModels,
    settings: Settings,
    call_record: CallStore,
    *,
    signals: SignalSource | None = None,
    on_handoff: HandoffHandler | None = None,
    turn_params: TurnParams | None = None,
    call: CallContext | None = None,
) -> CallPipeline:
    """One call's pipeline over ``transport``; channel, caller id and call id come from ``session``.

    ``signals`` adds outside signals to each caller turn (e.g. the prosody frustration score);
    ``on_handoff`` performs a warm transfer (SIP) instead of ending the call after the announcement;
    ``call``: the context of a call that goes on in this pipeline (handed back to the bot by a supervisor).
    """
    if call is None:
        call = CallContext(
            call_id=session.call_id or "",
            channel=session.channel,
            caller_id=session.caller_id,
            session=session,
            store=call_record,
            shared=shared,
        )
    turns = CallerTurnProcessor(
        shared,
        turn_params or TurnParams.from_config(settings.call),
        on_barge_in=call.bot_interrupted,
        name=f"turns-{call.call_id}",
    )
    call.turns = turns
    if signals is None:
        # The caller's voice: prosody -> frustration score, the dialog's per-turn signal.
        from voicebot.pipeline.prosody import ProsodyTap

        signals = ProsodyTap(settings.prosody, session)
    pipeline = Pipeline(
        [
            transport.input(),
            # Supervisors listening in hear the caller and the bot (voicebot.monitor).
            MonitorTap(call.call_id, "caller", holds_call=True, name=f"listen-caller-{call.call_id}"),
            # The caller's audio ends here (50 frames a second per call), so as few stages as possible come first.
            turns,
            KeypadCollector(name=f"keypad-{call.call_id}"),
            DialogStage(call, settings.call, signals=signals, name=f"dialog-{call.call_id}"),
            PiperSpeech(shared, call, settings.models.tts, name=f"tts-{call.call_id}"),
            transport.output(),
            MonitorTap(call.call_id, "bot", name=f"listen-bot-{call.call_id}"),
            CallControl(call, on_handoff=on_handoff, name=f"control-{call.call_id}"),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=pcm.SAMPLE_RATE, audio_out_sample_rate=shared.tts_sample_rate),
        enable_rtvi=False,
        enable_turn_tracking=False,
        # Silence is handled by the dialog stage (prompt, then goodbye), not by cancelling the worker.
        idle_timeout_secs=None,
        conversation_id=call.call_id,
    )
    return CallPipeline(pipeline=pipeline, worker=worker, call=call)
