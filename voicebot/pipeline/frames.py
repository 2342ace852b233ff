"""Frames of the voicebot pipeline, on top of pipecat's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pipecat.frames.frames import DataFrame

from dialogs.manager.handoff import HandoffPacket
from dialogs.nlu.heard import HeardWord
from dialogs.nlu.nbest import Hypothesis


@dataclass
class CallerTurnFrame(DataFrame):
    """One finished turn of the caller: the transcript of all of its speech, its audio, with timings.

    ``speech_end`` is the monotonic time of the last voiced audio; reply latency is counted from it.
    """

    text: str = ""
    start: datetime | None = None
    end: datetime | None = None
    speech_end: float = 0.0
    released: float = 0.0
    stt_ms: float = 0.0
    stt_wait_ms: float = 0.0
    speculations: int = 0  # transcriptions started for this turn's audio (those the caller talked over included)
    audio: bytes = b""  # the utterance, 16 kHz mono PCM16 (for prosody)
    transcription_failed: bool = False  # speech recognition raised: ``text`` is empty, the bot apologises
    confidence: float | None = None  # the recogniser's confidence in ``text``, 0-1 (TurnSignals.transcript_confidence)
    # Why the recogniser gave no text for this audio ("no speech", "unsure", "repetitive", "prompt echo", "language de").
    rejected: str | None = None
    # The recogniser's other readings when it was unsure (greedy first); the dialog stage picks one by the NLU.
    alternatives: tuple[Hypothesis, ...] = ()
    # ``text`` word by word with the recogniser's probability of each (Transcript.words).
    words: tuple[HeardWord, ...] = ()
    # Rejected as another language only ("language th"): the words decoded in the bot's language anyway
    # (Transcript.foreign_reading). The dialog may ask whether they were meant; it never acts on them.
    foreign_reading: str = ""
    # The second recogniser whose reading ``text`` is, after the first rejected the audio (Transcript.heard_by).
    heard_by: str | None = None
    heard_by_because: str | None = None  # why the first recogniser rejected it ("language th", "unsure" ...)
    # A turn in progress must reach the dialog even if the caller barges in meanwhile.
    interruptible: bool = field(default=False, init=False)


    @property
    def not_understood(self) -> bool:
        """The caller said something the recogniser could not make out (not silence, noise or a cough)."""
        return self.rejected is not None and self.rejected != "no speech"


@dataclass
class ExpectedAnswerFrame(DataFrame):
    """Sent upstream by the dialog stage after each reply: what kind of answer the bot asked for
    (``BotReply.expects``: "order_number", "yes_no" ..., None for an open question), so the recogniser
    can expect it in the caller's next turn."""

    expects: str | None = None


@dataclass
class GreetFrame(DataFrame):
    """Asks the dialog stage to greet the caller (queued when the caller's media is connected)."""


@dataclass
class ResumeFrame(DataFrame):
    """Asks the dialog stage to take the call back (queued when a supervisor hands the call back to the bot)."""


@dataclass
class BotSayFrame(DataFrame):
    """Something the bot says. ``then`` is what happens once it has been heard in full."""

    text: str = ""
    style: str = "default"
    kind: str = "reply"  # greeting | reply | prompt | goodbye | holding
    then: str = "continue"  # continue | hangup | handoff
    turn_id: int | None = None
    speech_end: float | None = None
    stages: dict[str, float] = field(default_factory=dict)
    handoff: HandoffPacket | None = None


@dataclass
class BotSaidFrame(DataFrame):
    """Pushed by the TTS after the last audio of a :class:`BotSayFrame`; it leaves the output transport
    only once that audio has been sent, so a processor after the output knows the caller heard it."""

    say: BotSayFrame | None = None
