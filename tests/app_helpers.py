"""The server's app in-process without models, for the server's tests: what its routes read of the runtime is real
(a migrated database, an :class:`~voicebot.events.EventBus`, a :class:`~voicebot.storage.CallStore`, with
``queues=True`` a :class:`~voicebot.transfer.TransferService`), and nothing loads a model.

    app = model_less_app(tmp / "voicebot.db", Settings(agents=[...], queues=[...]), queues=True)
    add_user(app.engine, "sue", "supervisor")
    with serve_app(app.create()) as base:        # or TestClient(app.create())
        ...
    app.close()

Tests that need the bot itself load a real :class:`voicebot.runtime.Runtime` instead (``Runtime.load``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, create_engine

from voicebot.config import Settings
from voicebot.events import EventBus
from voicebot.qa.scorecard import Scorer
from voicebot.redaction import Redactor
from voicebot.server.app import create_app
from voicebot.storage import CallStore
from voicebot.storage.schema import upgrade
from voicebot.transfer import TransferService


@dataclass
class ModelLessApp:
    settings: Settings
    engine: Engine
    events: EventBus
    store: CallStore | None
    service: TransferService | None
    runtime: Any
    """Stands in for :class:`voicebot.runtime.Runtime`: ``settings``, ``events``, ``store`` (unless left out) and
    ``engine.database.engine`` (plus what the test added to ``engine``)."""

    def create(self) -> FastAPI:
        """The app (``create_app``) on this runtime, with the agent queue if there is one."""
        return create_app(self.runtime, self.service)

    def close(self) -> None:
        """Close the call store (its writer thread)."""
        if self.store is not None:
            self.store.close()


def model_less_app(database: Path | str | CallStore, settings: Settings | None = None, *, store: bool = True,
                   redactor: Redactor | None = None, scorer: Scorer | None = None, queues: bool = False,
                   session: Callable[..., Any] | None = None, **engine_parts: Any) -> ModelLessApp:
    """A runtime for :func:`voicebot.server.app.create_app` without models.

    ``database``: a SQLite file or a database URL (migrated here), or a call store already made (its engine and
    event bus are used). ``store=False`` leaves the call store out of the runtime (routes that need only the users
    and the bus); ``redactor`` and ``scorer`` go to the call store made here. ``queues``: a transfer service on
    ``settings`` (no models: it neither speaks nor transcribes). ``session`` (the customer database's) and
    ``engine_parts`` (``domain``, ``nlu``, ``knowledge``, ``clock`` ...) are added to the runtime's ``engine``.
    """
    settings = settings if settings is not None else Settings()
    calls: CallStore | None
    if isinstance(database, CallStore):
        assert database.events is not None, "the call store must have an event bus"
        engine, events, calls = database.engine, database.events, database
    else:
        engine = create_engine(database if isinstance(database, str) else f"sqlite:///{database}")
        upgrade(engine)
        events = EventBus()
        calls = CallStore(engine, events, redactor, scorer=scorer) if store else None
    db = SimpleNamespace(engine=engine) if session is None else SimpleNamespace(engine=engine, session=session)
    runtime = SimpleNamespace(settings=settings, events=events, engine=SimpleNamespace(database=db, **engine_parts))
    if calls is not None:
        runtime.store = calls
    service = TransferService(settings, shared=None, engine=engine) if queues else None  # type: ignore[arg-type]
    return ModelLessApp(settings, engine, events, calls, service, runtime)
