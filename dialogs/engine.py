"""The dialog engine: what one process loads once (domain, trained NLU, database) and hands to each call."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dialogs.db.engine import Database, ensure_database
from dialogs.domain import Domain, load_domain
from dialogs.knowledge.dialog import Knowledge
from dialogs.manager.callback import AgentDesk
from dialogs.manager.consent import RecordingConsent
from dialogs.manager.session import BotReply, DialogSession, Turn
from dialogs.manager.signals import TurnSignals
from dialogs.nlu import NLU
from dialogs.nlu.classifier import Features

log = logging.getLogger(__name__)

__all__ = ["BotReply", "DialogEngine", "EngineOptions", "MemoryOptions", "RecordingConsent", "Turn", "TurnSignals"]


@dataclass
class MemoryOptions:
    enabled: bool = True
    remember: tuple[str, ...] = ("returns", "orders", "contacts")
    remember_days: int = 30


@dataclass
class EngineOptions:
    max_no_match: int = 2
    max_reprompts: int = 2
    max_verification_attempts: int = 3
    # Confirm on doubt: a request whose best intent scored from this up to the NLU threshold is confirmed
    # ("Just to check: ...?") instead of not understood; so is any request heard with a transcript confidence
    # below confirm_transcript_below.
    confirm_intent_from: float = 0.2
    confirm_transcript_below: float = 0.5
    # ... and a request whose clause's surest word the recogniser heard below this probability (0: off). On the
    # spoken dev set (612 clips) 4 turns' requests were heard below 0.5: 3 of them held a request not asked for.
    confirm_heard_below: float = 0.5
    # Speech rejected only as another language, at an open question, whose reading in the bot's language is one
    # request the NLU scores this or more: asked about ("Sorry, I may not have caught that. Just to check: ...?")
    # instead of not understood. 0: off (the strict rule, for callers of many languages).
    confirm_foreign_guess_from: float = 0.6
    # A second request scored from this up to the NLU threshold beside a sure one: asked about once the sure ones are
    # done ("Did you also want ...?"), acted on only after a yes. 0: off (also_wanted.py).
    also_ask_from: float = 0.4
    # The frustration levels' thresholds; the app passes its prosody config's, so the dialog grades a score
    # exactly as the scorer and the dashboard do (this library does not import audio).
    annoyed: float = 0.4  # calmer response variants from this score on
    frustrated: float = 0.7  # a human is offered (or, per the domain, handed off) from this score on
    greeting: str | None = None
    memory: MemoryOptions = field(default_factory=MemoryOptions)
    # Call recording: announced in a voice call's greeting, declinable by words or a key; None: not recorded.
    recording: RecordingConsent | None = None


class DialogEngine:
    """Shared by all calls of a process. ``new_call`` gives each call its own :class:`DialogSession`."""

    def __init__(
        self,
        domain: Domain,
        nlu: NLU,
        database: Database,
        options: EngineOptions | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        seed: int | None = None,
        knowledge: Knowledge | None = None,
    ):
        self.domain = domain
        self.knowledge = knowledge  # FAQ answers; None when the domain names no knowledge folder
        self.nlu = nlu
        self.database = database
        self.options = options or EngineOptions()
        self.clock = clock or (lambda: datetime.now().replace(microsecond=0))
        self._rng = random.Random(seed)
        # Applied to the text of a contact (summary, transcript, hand-off) before it is stored: the app sets its
        # redaction of card numbers and the like here (this library does not know the app's config).
        self.redact: Callable[[Any], Any] | None = None
        # Whether a human can take a hand-off and where callback requests go: set by the app; None: a human
        # is assumed to be there.
        self.desk: AgentDesk | None = None

    @classmethod
    def build(
        cls,
        *,
        domain_path: str | Path | None = None,
        database_url: str = "sqlite:///voicebot.db",
        seed_demo: bool = True,
        threshold: float = 0.45,
        max_intents: int = 3,
        features: Features = "tfidf",
        options: EngineOptions | None = None,
        clock: Callable[[], datetime] | None = None,
        seed: int | None = None,
    ) -> DialogEngine:
        """Load the domain, train the NLU from its examples and open (creating if needed) the database."""
        t0 = time.perf_counter()
        domain = load_domain(domain_path)
        knowledge = Knowledge.for_domain(domain)
        nlu = NLU.train(domain, threshold=threshold, max_intents=max_intents, features=features, questions=knowledge)
        t1 = time.perf_counter()
        now = (clock or datetime.now)()
        database = ensure_database(database_url, seed_demo=seed_demo, now=now)
        log.info("dialog engine ready: %d intents, NLU trained in %.2f s", len(domain.intents), t1 - t0)
        return cls(domain, nlu, database, options, clock=clock, seed=seed, knowledge=knowledge)

    @classmethod
    def from_settings(cls, settings: Any, *, clock: Callable[[], datetime] | None = None) -> DialogEngine:
        """Build from ``voicebot.config.Settings`` (read by attribute, so this library needs no app import)."""
        d, m = settings.dialog, settings.memory
        options = EngineOptions(
            max_no_match=d.max_no_match,
            max_reprompts=d.max_reprompts,
            max_verification_attempts=d.max_verification_attempts,
            confirm_intent_from=d.confirm_intent_from,
            confirm_transcript_below=d.confirm_transcript_below,
            confirm_heard_below=d.confirm_heard_below,
            confirm_foreign_guess_from=d.confirm_foreign_guess_from,
            also_ask_from=d.also_ask_from,
            annoyed=settings.prosody.annoyed,
            frustrated=settings.prosody.frustrated,
            greeting=getattr(getattr(settings, "call", None), "greeting", None),
            memory=MemoryOptions(enabled=m.enabled, remember=tuple(m.remember), remember_days=m.remember_days),
            recording=_recording_consent(getattr(settings, "recording", None)),
        )
        return cls.build(
            domain_path=settings.resolve(settings.domain.path),
            database_url=settings.database.url,
            seed_demo=settings.database.seed_demo,
            threshold=settings.nlu.threshold,
            max_intents=settings.nlu.max_intents,
            features=settings.nlu.features,
            options=options,
            clock=clock,
            seed=d.seed,
        )

    def new_call(
        self,
        *,
        channel: str,
        caller_id: str | None = None,
        call_id: str | None = None,
        dialled: str | None = None,
        greeting: str | None = None,
        start_intent: str | None = None,
    ) -> DialogSession:
        """A fresh dialog for one call (or chat).

        ``dialled`` is the number the caller dialled; a trunk's per-number route may give the call its own
        ``greeting`` and a ``start_intent`` whose flow begins right after the greeting (a billing hotline).
        """
        if start_intent is not None and start_intent not in self.domain.intents:
            raise ValueError(f"start_intent {start_intent!r} is not an intent of the domain")
        return DialogSession(
            self,
            channel=channel,
            caller_id=caller_id or None,
            call_id=call_id or uuid.uuid4().hex,
            clock=self.clock,
            rng=random.Random(self._rng.random()),
            dialled=dialled,
            greeting=greeting,
            start_intent=start_intent,
        )


def _recording_consent(recording: Any) -> RecordingConsent | None:
    """The consent rules of ``voicebot.config.RecordingConfig`` (read by attribute), None when recording is off."""
    if recording is None or not recording.enabled:
        return None
    return RecordingConsent(announcement=recording.announcement, decline_words=tuple(recording.decline_words),
                            decline_key=recording.decline_key, confirmation=recording.confirmation)
