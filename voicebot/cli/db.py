"""``voicebot db init|upgrade|current|status``: create, upgrade and inspect the database (database.url)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from voicebot.cli.common import config_option, settings_or_exit
from voicebot.config import Settings

if TYPE_CHECKING:
    from dialogs.db.engine import Database
    from voicebot.storage.schema import Upgrade


def open_database(settings: Settings) -> Database:
    """The configured database, connected and upgraded to this version's schema; on failure a clear message
    naming the URL and exit 1. A database without voicebot tables is refused (run ``voicebot db init``)."""
    from sqlalchemy import inspect

    from dialogs.db.engine import Database, DatabaseError, safe_url
    from voicebot.storage.schema import declared_tables, prepare

    url = settings.database.url
    try:
        db = Database(url, echo=settings.database.echo)
        db.check()
        if not set(inspect(db.engine).get_table_names()) & set(declared_tables()):
            click.echo(f"{safe_url(url)} has no voicebot tables yet: run `voicebot db init` first.", err=True)
            sys.exit(1)
        prepare(url, settings.database.auto_upgrade)
    except DatabaseError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    return db


def _describe(result: Upgrade) -> list[str]:
    if not result.applied:
        return [f"{result.database} is up to date at schema revision {result.after}."]
    return [f"Upgraded {result.database} from {result.before or 'no revision'} to schema revision {result.after}:",
            *(f"  {r.id}  {r.title}" for r in result.applied)]


@click.group()
def db() -> None:
    """Create, upgrade or inspect the database (database.url in voicebot.yaml)."""


@db.command("init")
@click.option("--demo", is_flag=True, help="Fill the new database with the demo retail data set.")
@click.option("--force", is_flag=True, help="Drop every voicebot table first if the database holds data.")
@config_option
def init(demo: bool, force: bool, config_path: str | None) -> None:
    """Create the tables (and with --demo the demo customers). Refuses to touch a database that
    already holds data unless --force is given."""
    from dialogs.db.demo import JANE, JOHN, seed_demo
    from dialogs.db.engine import Database, DatabaseError, safe_url
    from dialogs.db.times import utc_now
    from voicebot.storage.schema import drop_all, upgrade

    settings = settings_or_exit(config_path)
    shown = safe_url(settings.database.url)
    try:
        database = Database(settings.database.url, echo=settings.database.echo)
        database.check()
    except DatabaseError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    try:
        if not database.is_empty():  # before any upgrade: a refused init changes nothing
            if not force:
                click.echo(f"{shown} already holds data; nothing changed. "
                           "Use --force to drop every voicebot table and start again.", err=True)
                sys.exit(1)
            drop_all(database.engine)
        click.echo(f"Created the tables in {shown} (schema revision {upgrade(database.engine).after}).")
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


@db.command("upgrade")
@click.option("--sql", is_flag=True, help="Print the SQL of the upgrade instead of running it (to review or "
              "hand to a DBA); the database is not changed.")
@config_option
def upgrade_command(sql: bool, config_path: str | None) -> None:
    """Upgrade the database to this version's schema, keeping its data. A database made before schema
    revisions existed is adopted in place. `voicebot serve` does the same at start (database.auto_upgrade)."""
    from dialogs.db.engine import Database, DatabaseError
    from voicebot.storage.schema import upgrade, upgrade_sql

    settings = settings_or_exit(config_path)
    try:
        database = Database(settings.database.url)
        database.check()
        try:
            if sql:
                result = upgrade_sql(database.engine, sys.stdout)
                click.echo(f"-- {result.database}: from {result.before or 'no revision'} to {result.after}; "
                           "nothing was run.", err=True)
            else:
                click.echo("\n".join(_describe(upgrade(database.engine))))
        finally:
            database.dispose()
    except DatabaseError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)


@db.command("current")
@config_option
def current(config_path: str | None) -> None:
    """Print the database's schema revision and whether it is the newest this version knows."""
    from dialogs.db.engine import DatabaseError, safe_url
    from voicebot.storage.schema import current_revision, revisions

    settings = settings_or_exit(config_path)
    shown = safe_url(settings.database.url)
    try:
        revision = current_revision(settings.database.url)
    except DatabaseError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    known = [r.id for r in revisions()]
    if revision == known[-1]:
        click.echo(f"{shown}: schema revision {revision} (the newest).")
    elif revision is None:
        click.echo(f"{shown}: no schema revision (empty, or made before revisions existed); "
                   f"`voicebot db upgrade` brings it to {known[-1]}.")
    elif revision in known:
        click.echo(f"{shown}: schema revision {revision}; this version's newest is {known[-1]}: "
                   "run `voicebot db upgrade`.")
    else:
        click.echo(f"{shown}: schema revision {revision}, which this version does not know (its newest is "
                   f"{known[-1]}): a newer voicebot has upgraded it.")
        sys.exit(1)


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
