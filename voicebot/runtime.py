"""What a process loads once at start-up (the server, `voicebot dial`): the dialog engine, the shared models, the
call store and the event bus."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dialogs.db.repository import close_stale_contacts
from voicebot.config import Settings
from voicebot.events import EventBus
from voicebot.pipeline.dialog import (
    DATABASE_SORRY,
    HOLDING_PHRASE,
    MISHEARD_APOLOGY,
    SILENCE_GOODBYE,
    SILENCE_PROMPT,
)
from voicebot.pipeline.shared import SharedModels
from voicebot.pipeline.tts import SPEECH_APOLOGY
from voicebot.pipeline.vad import shared_silero
from voicebot.redaction import Redactor
from voicebot.storage import CallStore

if TYPE_CHECKING:
    from dialogs.engine import DialogEngine

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    engine: DialogEngine
    shared: SharedModels
    store: CallStore
    events: EventBus

    @classmethod
    def load(cls, settings: Settings, *, warm_up: bool = True) -> Runtime:
        """Load models and the dialog engine; raises ``ModelError`` / ``DatabaseError`` with clear messages.

        Calls left open by a previous process are closed as abandoned; fixed prompts are synthesised
        once so every call gets their audio from the cache.
        """
        from dialogs.engine import DialogEngine
        from voicebot.qa.scorecard import scorer_from_settings
        from voicebot.storage.schema import prepare
        from voicebot.transfer.desk import QueueDesk

        prepare(settings.database.url, settings.database.auto_upgrade)  # before anything opens the database
        shared = SharedModels.load(settings)
        engine = DialogEngine.from_settings(settings)
        events = EventBus(node_id=settings.cluster.node_id)
        redactor = Redactor.from_settings(settings)
        engine.redact = redactor.value  # the contact rows of the customer database (transcript, hand-off)
        engine.desk = QueueDesk.from_settings(settings, engine.database.engine, redactor.value)
        store = CallStore(engine.database.engine, events, redactor, scorer=scorer_from_settings(settings.qa),
                          node_id=settings.cluster.node_id or None)
        stale = stale_contacts = 0
        # In a cluster the other nodes' calls are live: this node closes its own leftovers once it shares events
        # (voicebot.cluster.redis_state.ClusterState), and contacts (no node on them) are left to the survivors.
        if not settings.cluster.redis_url:
            stale = store.close_stale()
            with engine.database.session() as session:
                stale_contacts = close_stale_contacts(session)
        if stale or stale_contacts:
            log.info("closed %d call record(s) and %d contact(s) left open by a previous run (interrupted)", stale,
                     stale_contacts)
        if warm_up:
            shared.warm_up(fixed_prompts(settings, engine))
            shared_silero()  # the voice-activity network every call's turn taking scores with, before the first call
        return cls(settings=settings, engine=engine, shared=shared, store=store, events=events)

    def close(self) -> None:
        self.shared.close()
        self.store.close()


def fixed_prompts(settings: Settings, engine: DialogEngine) -> list[str]:
    """What the bot says on many calls word for word: synthesised once at start-up and kept (the apologies
    must play even when Piper fails)."""
    return [*_greetings(settings, engine), SILENCE_PROMPT, SILENCE_GOODBYE, HOLDING_PHRASE, DATABASE_SORRY,
            MISHEARD_APOLOGY, SPEECH_APOLOGY]


def _greetings(settings: Settings, engine: DialogEngine) -> list[str]:
    """The greeting texts a call can start with (each variant of the domain's, or the override)."""
    if settings.call.greeting:
        return [settings.call.greeting]
    import random

    try:
        from dialogs.manager.responses import Responder

        return sorted({Responder(engine.domain, random.Random(i)).render("greeting") for i in range(8)})
    except Exception:  # a domain without a plain greeting: nothing to pre-synthesise
        return []
