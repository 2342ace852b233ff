"""Building the dialog engine from settings, with errors a person can act on."""

from __future__ import annotations

import sys

import click

from dialogs.domain import DomainError
from dialogs.engine import DialogEngine
from voicebot.config import Settings


def build_engine_or_exit(settings: Settings) -> DialogEngine:
    """The process's dialog engine; a broken domain file or database URL exits 2 with the reason."""
    from dialogs.db.engine import DatabaseError
    from voicebot.redaction import Redactor
    from voicebot.storage.schema import prepare

    try:
        prepare(settings.database.url, settings.database.auto_upgrade)  # before the engine opens the database
        engine = DialogEngine.from_settings(settings)
    except DomainError as exc:
        click.echo(f"The domain cannot be loaded:\n{exc}", err=True)
        sys.exit(2)
    except DatabaseError as exc:
        click.echo(f"The database cannot be used: {exc}", err=True)
        sys.exit(2)
    engine.redact = Redactor.from_settings(settings).value  # contacts it stores (chat) as in calls
    from voicebot.transfer.desk import QueueDesk

    engine.desk = QueueDesk.from_settings(settings, engine.database.engine, engine.redact)
    return engine
