"""``voicebot db init [--demo] [--force]`` and ``voicebot db status``: create and inspect the customer database."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from voicebot.cli.common import config_option, settings_or_exit
from voicebot.config import Settings

if TYPE_CHECKING:
    from dialogs.db.engine import Database


def open_database(settings: Settings, need_tables: bool = True) -> Database:
    """The configured database, connected; on failure a clear message naming the URL and exit 1."""
    from dialogs.db.engine import Database, DatabaseError, safe_url

    url = settings.database.url
    try:
        db = Database(url, echo=settings.database.echo)
        db.check()
        if need_tables and not db.has_tables():
            click.echo(f"{safe_url(url)} has no voicebot tables yet: run `voicebot db init` first.", err=True)
            sys.exit(1)
    except DatabaseError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    return db


@click.group()
def db() -> None:
    """Create or inspect the customer database (database.url in voicebot.yaml)."""


@db.command("init")
@click.option("--demo", is_flag=True, help="Fill the new database with the demo retail data set.")
@click.option("--force", is_flag=True, help="Drop every voicebot table first if the database holds data.")
@config_option
def init(demo: bool, force: bool, config_path: str | None) -> None:
    """Create the tables (and with --demo the demo customers). Refuses to touch a database that
    already holds data unless --force is given."""
    from dialogs.db.demo import JANE, JOHN, seed_demo
    from dialogs.db.engine import DatabaseError, safe_url
    from dialogs.db.times import utc_now

    database = open_database(settings_or_exit(config_path), need_tables=False)
    shown = safe_url(database.url)
    try:
        if not database.is_empty():
            if not force:
                click.echo(f"{shown} already holds data; nothing changed. "
                           "Use --force to drop every voicebot table and start again.", err=True)
                sys.exit(1)
            database.drop_all()
        database.create_all()
        click.echo(f"Created the tables in {shown}.")
        if demo:
            with database.session() as session:
                counts = seed_demo(session, utc_now())
            click.echo("Demo data: " + ", ".join(f"{n} {table}" for table, n in counts.items()) + ".")
            for i, person in enumerate((JANE, JOHN), start=1):
                click.echo(f"  customer {i}: {person['first_name']} {person['last_name']}, phone {person['phone']}, "
                           f"postcode {person['postcode']}, born {person['date_of_birth']}, PIN {person['pin']}")
    except DatabaseError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    finally:
        database.dispose()


@db.command("status")
@config_option
def status(config_path: str | None) -> None:
    """Print the database URL (password hidden) and the number of rows per table."""
    from sqlalchemy import func, select

    from dialogs.db.engine import safe_url
    from dialogs.db.models import Base

    database = open_database(settings_or_exit(config_path))
    click.echo(safe_url(database.url))
    with database.session() as session:
        for table in Base.metadata.sorted_tables:
            click.echo(f"  {table.name:<14} {session.scalar(select(func.count()).select_from(table))}")
    database.dispose()
