"""Speech out: Piper over the one shared voice, sentence by sentence, so the first audio leaves early."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import UTC, datetime

from pipecat.frames.frames import Frame, TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from voicebot import metrics
from voicebot.config import TTSConfig
from voicebot.pipeline.call import CallContext
from voicebot.pipeline.frames import BotSaidFrame, BotSayFrame
from voicebot.pipeline.lanes import SPEECH
from voicebot.pipeline.shared import SharedModels, Speech, speech_chunks

log = logging.getLogger(__name__)

# Said (from the pinned prompt audio, so even without Piper) when a reply cannot be synthesised.
SPEECH_APOLOGY = "Sorry, something went wrong on my side. Could you say that again, please?"


class PiperSpeech(FrameProcessor):
    """Speaks each :class:`BotSayFrame`; follows its audio with a :class:`BotSaidFrame`.

    Runs inside the processor's own task, so a barge-in (an ``InterruptionFrame``) cancels the synthesis
    of the rest of the reply, and the output transport drops the audio already queued.
    """

    def __init__(self, shared: SharedModels, call: CallContext, tts_config: TTSConfig, **kwargs):
        super().__init__(**kwargs)
        self._shared = shared
        self._call = call
        self._cfg = tts_config

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, BotSayFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._speak(frame)
        else:
            await self.push_frame(frame, direction)

    async def _speak(self, say: BotSayFrame) -> None:
        scale = self._cfg.calm_length_scale if say.style == "calm" else self._cfg.length_scale
        sentences = speech_chunks(say.text)
        if say.turn_id is not None:
            self._call.playing.add(say.turn_id)
        started = time.monotonic()
        first = True
        # Synthesise sentence n+1 while sentence n is being played.
        upcoming: asyncio.Future[Speech] | None = None
        if sentences:
            upcoming = asyncio.ensure_future(SPEECH.run(self._shared.synthesize, sentences[0], scale))
        try:
            await self.push_frame(TTSStartedFrame())
            for i in range(len(sentences)):
                assert upcoming is not None
                speech = await upcoming
                upcoming = None
                if i + 1 < len(sentences):
                    upcoming = asyncio.ensure_future(
                        SPEECH.run(self._shared.synthesize, sentences[i + 1], scale)
                    )
                first_at = time.monotonic()
                await self.push_frame(
                    TTSAudioRawFrame(audio=speech.audio, sample_rate=speech.sample_rate, num_channels=1)
                )
                if first:
                    first = False
                    # Recorded after the audio is on its way: the database is not on the reply path.
                    await self._first_audio(say, started, first_at)
            await self.push_frame(TTSStoppedFrame())
            await self.push_frame(BotSaidFrame(say=say))
        except asyncio.CancelledError:
            # Interrupted: the turn is closed by the barge-in (CallContext.bot_interrupted).
            if upcoming is not None:
                upcoming.cancel()
            raise
        except Exception:
            log.exception("call %s: synthesising the bot's words failed", self._call.call_id)
            if upcoming is not None:
                upcoming.cancel()
            await self._apologise(say)

    async def _apologise(self, say: BotSayFrame) -> None:
        """Piper failed mid-reply: mark the turn, say the pinned apology (no Piper needed), and go on as the
        reply would have (continue, hang up or hand off)."""
        if say.turn_id is not None:
            self._call.playing.discard(say.turn_id)
        await self._call.update_turn(say.turn_id, end=datetime.now(UTC), extra={"error": "speech synthesis failed"})
        turn_id = await self._call.add_turn("bot", SPEECH_APOLOGY, datetime.now(UTC), extra={"kind": "apology"})
        try:
            for sentence in speech_chunks(SPEECH_APOLOGY):
                speech = await SPEECH.run(self._shared.synthesize, sentence, self._cfg.length_scale)
                await self.push_frame(
                    TTSAudioRawFrame(audio=speech.audio, sample_rate=speech.sample_rate, num_channels=1)
                )
        except Exception:  # the apology was not pinned (no warm-up) and Piper still fails
            log.exception("call %s: the apology could not be synthesised either", self._call.call_id)
        await self.push_frame(TTSStoppedFrame())
        if turn_id is not None:
            self._call.playing.add(turn_id)
        await self.push_frame(BotSaidFrame(say=dataclasses.replace(say, turn_id=turn_id)))

    async def _first_audio(self, say: BotSayFrame, started: float, now: float) -> None:
        tts_ms = (now - started) * 1000
        metrics.TTS_FIRST_AUDIO.observe(tts_ms / 1000)
        fields: dict = {"start": datetime.now(UTC)}
        if say.speech_end is not None:
            latency_ms = (now - say.speech_end) * 1000
            metrics.REPLY_LATENCY.observe(latency_ms / 1000)
            fields["latency_ms"] = round(latency_ms, 1)
            fields["extra"] = {"stages": {**say.stages, "tts_first_ms": round(tts_ms, 1)}}
        await self._call.update_turn(say.turn_id, **fields)
