"""The dialog stage: caller turns in, what the bot says out; and the silence and duration timers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from sqlalchemy.exc import SQLAlchemyError

from dialogs.engine import BotReply, Turn, TurnSignals
from dialogs.jsonable import jsonable
from dialogs.manager.doubt import ForeignReading
from dialogs.nlu.entities import MASK
from dialogs.nlu.nbest import Choice, choose
from telephony.keypad import KeypadInputFrame
from voicebot import metrics
from voicebot.config import CallConfig
from voicebot.pipeline.call import CallContext
from voicebot.pipeline.frames import (
    BotSayFrame,
    CallerTurnFrame,
    ExpectedAnswerFrame,
    GreetFrame,
    ResumeFrame,
)
from voicebot.pipeline.shared import is_non_speech

log = logging.getLogger(__name__)

SILENCE_PROMPT = "Are you still there? Tell me how I can help, or say agent to talk to a person."
SILENCE_GOODBYE = "I haven't heard anything, so I'll end the call now. Thank you for calling, goodbye."
DURATION_GOODBYE = "We have reached the time limit for this call. Thank you for calling, goodbye."
MISHEARD_APOLOGY = "Sorry, I didn't catch that. Could you say it again, please?"
HOLDING_PHRASE = "One moment, I'm checking that for you."
DATABASE_SORRY = ("I'm sorry, I can't reach our records right now. Please try again in a moment, or say agent to "
                  "talk to a person.")

# Signals about a caller turn from outside the words (e.g. a frustration score from the turn's audio);
# called in the inference pool, so it may take a few milliseconds of CPU.
SignalSource = Callable[[CallerTurnFrame], TurnSignals]


class DialogStage(FrameProcessor):
    """Adapter from caller turns to the dialog engine; pushes :class:`BotSayFrame` s downstream."""

    def __init__(
        self, call: CallContext, call_config: CallConfig, signals: SignalSource | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self._call = call
        self._cfg = call_config
        self._signals = signals
        self._timer: asyncio.Task | None = None
        self._duration: asyncio.Task | None = None
        self._prompted = False
        self._ending = False
        self._bot_speaking = False
        self._caller_speaking = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, GreetFrame):
            await self._greet()
            return
        if isinstance(frame, ResumeFrame):
            await self._resume()
            return
        if isinstance(frame, (CallerTurnFrame, KeypadInputFrame)) and self._call.suspended:
            return  # said before a supervisor took the call over (a browser's pipeline runs on): theirs now
        if isinstance(frame, CallerTurnFrame):
            await self._on_turn(frame)
            return
        if isinstance(frame, KeypadInputFrame):
            await self._on_keys(frame)
            return
        if isinstance(frame, UserStartedSpeakingFrame):
            self._caller_speaking = True
            self._stop_timer()
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._caller_speaking = False
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
            self._stop_timer()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
            self._arm_timer()
        elif isinstance(frame, (EndFrame, CancelFrame)):
            self._stop_timer()
            if self._duration is not None:
                self._duration.cancel()
        await self.push_frame(frame, direction)

    async def _greet(self) -> None:
        await self._call.open()
        self._duration = asyncio.ensure_future(self._duration_limit())
        reply = await self._call.start_dialog()
        turn_id = await self._call.add_turn(
            "bot", reply.text, datetime.now(UTC), extra=self._bot_extra(reply, "greeting")
        )
        await self.push_frame(
            BotSayFrame(text=reply.text, style=reply.style, kind="greeting", turn_id=turn_id)
        )

    async def _resume(self) -> None:
        """The call is back from a supervisor: the dialog goes on where it was ("I'm back" and its question)."""
        if self._duration is not None:  # a browser's pipeline ran on while the supervisor had the call
            self._duration.cancel()
        if self._call.elapsed_s() >= self._cfg.max_duration_s:
            await self._time_up()  # handed back after the call's time ran out: the goodbye, not its question
            return
        self._duration = asyncio.ensure_future(self._duration_limit())
        reply = await self._call.run_dialog(self._call.session.resume)
        turn_id = await self._call.add_turn("bot", reply.text, datetime.now(UTC), extra=self._bot_extra(reply, "resumed"))
        await self.push_frame(BotSayFrame(text=reply.text, style=reply.style, kind="reply", turn_id=turn_id))

    async def _on_turn(self, frame: CallerTurnFrame) -> None:
        if frame.transcription_failed and not self._ending:
            assert frame.start is not None
            await self._call.add_turn("caller", "[transcription failed]", frame.start, end=frame.end,
                                      extra={"error": "transcription failed"})
            await self._say(MISHEARD_APOLOGY, kind="apology")
            return
        if is_non_speech(frame.text) and not frame.not_understood:
            self._arm_timer()
            return
        if self._call.end_reason == "silence":
            # The caller spoke up over the goodbye: the call goes on.
            self._ending = False
            self._call.end_reason = None
        self._prompted = False
        started = time.monotonic()
        signals = await self._call.run_dialog(self._signals, frame) if self._signals is not None else None
        if frame.confidence is not None:
            # Speech the recogniser rejected arrives with no text and confidence 0: the dialog counts a miss.
            signals = replace(signals or TurnSignals(), transcript_confidence=frame.confidence)
        text, choice = frame.text, None
        if frame.alternatives:
            choice = await self._call.run_dialog(self._choose, frame)
            text = choice.text
        if frame.words and text == frame.text:
            # The NLU doubts clauses whose words were heard unsurely (another reading has no word probabilities).
            signals = replace(signals or TurnSignals(), heard_words=frame.words)
        foreign = None
        if frame.foreign_reading and frame.rejected is not None:
            foreign = ForeignReading(frame.rejected.removeprefix("language ").strip(), frame.foreign_reading)
        reply = await self._answer(Turn(text=text, signals=signals or TurnSignals(), foreign=foreign))
        if choice is not None:
            # The decision trace shows every reading the recogniser offered and why one was acted on.
            reply.trace["hypotheses"] = _hypotheses_trace(frame, choice)
        if frame.heard_by is not None:
            # The first recogniser rejected the audio; the words acted on are the second one's.
            reply.trace["heard_by"] = {"model": frame.heard_by, "first_rejected": frame.heard_by_because}
        dialog_ms = (time.monotonic() - started) * 1000
        metrics.DIALOG_SECONDS.observe(dialog_ms / 1000)
        stages = {
            "endpoint_ms": round((frame.released - frame.speech_end) * 1000, 1),
            "stt_ms": round(frame.stt_ms, 1),
            "stt_wait_ms": round(frame.stt_wait_ms, 1),
            "speculations": frame.speculations,
            "dialog_ms": round(dialog_ms, 1),
        }
        assert frame.start is not None
        extra: dict[str, Any] = {"signals": signals.to_dict()} if signals is not None else {}
        entities = _entities(reply)
        if entities:
            extra["entities"] = entities
        if frame.rejected is not None:
            extra["not_understood"] = frame.rejected
        # A PIN or security code said aloud: the record and the dashboard get the words with it masked.
        text = reply.heard if reply.heard is not None else text or f"[not understood: {frame.rejected}]"
        await self._call.add_turn("caller", text, frame.start, end=frame.end, intents=reply.intents, extra=extra or None)
        await self._speak_reply(reply, speech_end=frame.speech_end, stages=stages)

    def _choose(self, frame: CallerTurnFrame) -> Choice:
        """The recogniser's reading the NLU is surest of (blocking: parses each reading)."""
        session = self._call.session
        today = session.clock().date()
        return choose(frame.alternatives, lambda t: session.engine.nlu.parse(t, today=today))

    async def _on_keys(self, frame: KeypadInputFrame) -> None:
        """A keypad entry (order number, PIN, 0 for an agent) is a caller turn without words."""
        if not frame.keys or self._ending:
            return
        self._stop_timer()
        self._prompted = False
        now = datetime.now(UTC)
        started = time.monotonic()
        reply = await self._answer(Turn(dtmf=frame.keys + ("#" if frame.terminated else "")))
        metrics.DIALOG_SECONDS.observe(time.monotonic() - started)
        # Digits can be a PIN: the call record keeps that keys were pressed, not which.
        await self._call.add_turn(
            "caller",
            f"[keypad: {MASK}]" if reply.keys_masked else f"[keypad: {len(frame.keys)} key(s)]",
            now,
            end=now,
            intents=reply.intents,
            extra={"kind": "keypad"},
        )
        await self._speak_reply(reply, keypad=True)

    async def _answer(self, turn: Turn) -> BotReply:
        """The dialog's reply to a turn. One that takes longer than call.hold_phrase_after_s (a slow or locked
        database) has the caller hear the holding phrase meanwhile; a database that stays unavailable gets an
        apology and the offer of a person instead of silence."""
        task = asyncio.ensure_future(self._call.handle(turn))
        done, _ = await asyncio.wait({task}, timeout=self._cfg.hold_phrase_after_s)
        if not done:
            await self._say(HOLDING_PHRASE, kind="holding")
        try:
            return await task
        except SQLAlchemyError as exc:
            log.warning("call %s: the dialog cannot reach the database (%s)", self._call.call_id,
                        getattr(exc, "orig", None) or exc.__class__.__name__)
            return BotReply(text=DATABASE_SORRY, trace={"rule": "database unavailable"})

    def _bot_extra(self, reply: BotReply, kind: str, keypad: bool = False) -> dict[str, Any]:
        """What a bot turn's record carries besides its text: why the bot said it, and whom it talks to."""
        trace = _trace(reply)
        if keypad:
            trace.pop("nlu", None)  # the parse of keyed digits would show a PIN
        extra: dict[str, Any] = {"kind": kind, "trace": trace}
        customer = getattr(self._call.session.state, "customer_name", None)
        if customer:
            extra["customer"] = customer
        return extra

    async def _speak_reply(
        self,
        reply: BotReply,
        speech_end: float | None = None,
        stages: dict[str, float] | None = None,
        keypad: bool = False,
    ) -> None:
        """Say the dialog's reply (recording it), and note how the call goes on: continue, hang up, hand off."""
        if self._call.suspended:
            return  # a supervisor took the call over while the dialog was answering
        if reply.recording_declined:  # before the confirmation is spoken: nothing of it is recorded
            await self._call.decline_recording()
        then = reply.action
        # The recogniser upstream listens for the kind of answer the bot asks for ("order_number", "yes_no").
        await self.push_frame(ExpectedAnswerFrame(expects=reply.expects), FrameDirection.UPSTREAM)
        if then != "continue":
            self._ending = True
            self._call.outcome = reply.outcome
            self._call.handoff = reply.handoff
            self._call.end_reason = "handoff" if then == "handoff" else "bot_hangup"
            if then == "handoff" and self._call.on_handoff_decided is not None:
                try:
                    self._call.on_handoff_decided(self._call, reply.handoff)
                except Exception:  # the announcement and the hand-off after it go on regardless
                    log.exception("call %s: early hand-off failed", self._call.call_id)
            elif then == "handoff":
                # No agent queue takes this call (it would publish the packet itself): the dashboard still sees it.
                self._call.publish_handoff(reply.handoff)
        if not reply.text.strip():
            if then != "continue":
                await self.push_frame(BotSayFrame(text="", kind="reply", then=then, handoff=reply.handoff))
            else:
                self._arm_timer()
            return
        turn_id = await self._call.add_turn(
            "bot", reply.text, datetime.now(UTC), extra=self._bot_extra(reply, "reply", keypad=keypad)
        )
        extra: dict[str, Any] = {"speech_end": speech_end, "stages": stages} if speech_end is not None else {}
        await self.push_frame(
            BotSayFrame(
                text=reply.text,
                style=reply.style,
                kind="reply",
                then=then,
                turn_id=turn_id,
                handoff=reply.handoff,
                **extra,
            )
        )

    # timers

    def _arm_timer(self) -> None:
        self._stop_timer()
        if self._ending or self._bot_speaking or self._caller_speaking or self._call.suspended:
            return
        delay = self._cfg.silence_hangup_s if self._prompted else self._cfg.silence_prompt_s
        self._timer = asyncio.ensure_future(self._on_silence(delay))

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _on_silence(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._call.suspended:
            return
        if not self._prompted:
            self._prompted = True
            # Silence is the dialog's no-input turn: it asks its pending question again ("What is your order
            # number?"), not a generic "how can I help".
            reply = await self._answer(Turn())
            if reply.action != "continue":
                await self._speak_reply(reply)
                return
            await self._say(reply.text or SILENCE_PROMPT, kind="prompt")
        else:
            self._ending = True
            self._call.end_reason = "silence"
            await self._say(SILENCE_GOODBYE, kind="goodbye", then="hangup")

    async def _duration_limit(self) -> None:
        # From the call's start: a call a supervisor handed back does not get the whole limit again.
        await asyncio.sleep(max(0.0, self._cfg.max_duration_s - self._call.elapsed_s()))
        if self._call.suspended:
            return  # the supervisor has the call; the bot's limit applies again once it is handed back
        await self._time_up()

    async def _time_up(self) -> None:
        self._ending = True
        self._call.end_reason = "bot_hangup"
        await self._say(DURATION_GOODBYE, kind="goodbye", then="hangup")

    async def _say(self, text: str, kind: str, then: str = "continue") -> None:
        if self._call.suspended:
            return
        turn_id = await self._call.add_turn("bot", text, datetime.now(UTC), extra={"kind": kind})
        await self.push_frame(BotSayFrame(text=text, kind=kind, then=then, turn_id=turn_id))


def _hypotheses_trace(frame: CallerTurnFrame, choice: Choice) -> list[dict[str, Any]]:
    return [
        {"text": h.text, "avg_logprob": h.avg_logprob, "support": support, "intents": list(intents),
         "chosen": i == choice.index}
        for i, (h, support, intents) in enumerate(
            zip(frame.alternatives, choice.support, choice.intents, strict=True))
    ]


def _trace(reply: BotReply) -> dict[str, Any]:
    """The reply's decision trace as plain JSON (the dialog masked its secrets)."""
    return jsonable(reply.trace or {})


def _entities(reply: BotReply) -> list[dict[str, Any]]:
    """The entities the NLU found in the caller's words (from the reply's trace; secrets masked there)."""
    nlu = _trace(reply).get("nlu") or {}
    return [e for e in nlu.get("entities") or [] if isinstance(e, dict)]
