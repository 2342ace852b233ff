"""The one registry of the product's tables, and the Alembic migrations that create and change them.

Three declarative bases hold the tables, one per package that may own tables: the customer database of the
``dialogs`` library, the callback requests of ``telephony.queue``, and the application's own
(:class:`voicebot.storage.models.Base`: call records, users, hand-offs). The two libraries must not import
voicebot, so rather than hand one shared MetaData down to them, this registry lists their three MetaData (Alembic's
``target_metadata`` takes a list) and checks that no table name is used twice.

The migrations ship inside the package (``migrations/``) and are configured here in code: no alembic.ini. Every
process that opens the database for the product calls :func:`upgrade` first (``voicebot serve``, ``chat``,
``db``, ``users``, ``gdpr``); the stores never create tables. A database made before migrations existed (no
``alembic_version`` table) is adopted in place by revision 1 with all its rows.

For a new revision, change the models, then ``make_revision(url_of_a_database_at_head, "what changed")`` and
edit the file it writes into ``migrations/versions/``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, MetaData, Table, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from dialogs.db.engine import Database, DatabaseError, safe_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
UPGRADE_WAIT_S = 300  # a process starting while another upgrades the same SQLite file waits this long for it
# Key of a PostgreSQL advisory lock held while upgrading, so two processes starting at once upgrade one by one.
_PG_LOCK_KEY = 0x766F6963  # "voic"


class SchemaError(DatabaseError):
    """The database cannot be brought to this version's schema; the message names it, says why and what to do."""


@dataclass(frozen=True)
class Revision:
    id: str
    title: str  # the first line of the migration's docstring


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` did to a database."""

    database: str  # its URL, password hidden
    before: str | None  # None: empty, or made before migrations
    after: str
    applied: tuple[Revision, ...]  # oldest first; empty when it was up to date


def declared_metadata() -> list[MetaData]:
    """The MetaData of every table of the product (the models as this version declares them)."""
    # The registry is the one module that knows every package's tables; imported here, not at the top, so
    # that storage loads without the packages above it and upgrades (which use the migrations) import none.
    import voicebot.storage.transfers  # noqa: F401  (declares the hand-off tables on voicebot.storage.models.Base)
    import voicebot.users  # noqa: F401  (declares the user tables on it)
    from dialogs.db.models import Base as DialogsBase
    from telephony.queue.store import Base as QueueBase
    from voicebot.storage.models import Base

    return [DialogsBase.metadata, QueueBase.metadata, Base.metadata]


def declared_tables() -> dict[str, Table]:
    """Every table of the product by name."""
    tables: dict[str, Table] = {}
    for metadata in declared_metadata():
        for name, table in metadata.tables.items():
            if name in tables:
                raise RuntimeError(f"two packages declare the table {name}")
            tables[name] = table
    return tables


def alembic_config(output: TextIO | None = None) -> Config:
    """The Alembic configuration of the shipped migrations (``attributes`` carry the connection or URL)."""
    config = Config(stdout=output or sys.stdout, output_buffer=output)
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision this version knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def revisions() -> list[Revision]:
    """Every revision this version knows, oldest first."""
    return list(_between(ScriptDirectory.from_config(alembic_config()), None, head_revision()))


def current_revision(target: Engine | str) -> str | None:
    """The revision the database is at; None when it has none (empty, or made before migrations)."""
    with _engine(target) as engine:
        try:
            with engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except SQLAlchemyError as exc:
            raise SchemaError(f"cannot open database {engine.url.render_as_string()}: {_reason(exc)}") from None


def upgrade(target: Engine | str) -> Upgrade:
    """Bring the database to the newest revision (a no-op when it is there) and log one line naming the database
    and its revision. Raises :class:`SchemaError` when it cannot be reached, is at a revision this version does
    not know (a newer voicebot upgraded it) or holds a table of ours that it cannot adopt."""
    script = ScriptDirectory.from_config(alembic_config())
    with _engine(target) as engine:
        shown = engine.url.render_as_string(hide_password=True)
        try:
            with engine.connect() as conn:
                waited = _lock(conn)
                try:
                    before = _known_revision(conn, script, shown)
                    config = alembic_config()
                    config.attributes["connection"] = conn
                    command.upgrade(config, "head")
                    after = MigrationContext.configure(conn).get_current_revision()
                    conn.commit()
                finally:
                    if waited is not None:  # the pooled connection goes back with the app's busy timeout
                        conn.exec_driver_sql(f"PRAGMA busy_timeout = {waited}")
        except CommandError as exc:
            raise SchemaError(f"cannot upgrade {shown}: {exc}") from None
        except SQLAlchemyError as exc:
            raise SchemaError(f"cannot upgrade {shown}: {_reason(exc)}") from None
    assert after is not None
    applied = _between(script, before, after)
    if applied:
        log.info("database %s upgraded from %s to revision %s (%s)", shown, before or "no revision", after,
                 "; ".join(f"{r.id}: {r.title}" for r in applied))
    else:
        log.info("database %s at revision %s (up to date)", shown, after)
    return Upgrade(shown, before, after, applied)


def prepare(url: str, auto_upgrade: bool = True) -> Upgrade:
    """What the application does before it opens the database: :func:`upgrade` it, or with ``auto_upgrade``
    off check that it is at the newest revision (:class:`SchemaError` saying to run ``voicebot db upgrade``)."""
    if auto_upgrade:
        return upgrade(url)
    head = head_revision()
    current = current_revision(url)
    shown = safe_url(url)
    if current != head:
        raise SchemaError(f"{shown} is at schema revision {current or 'none'}, this version needs {head}: run "
                          "`voicebot db upgrade` (it upgrades on start only with database.auto_upgrade: true)")
    log.info("database %s at revision %s (up to date)", shown, current)
    return Upgrade(shown, current, current, ())


def upgrade_sql(target: Engine | str, output: TextIO) -> Upgrade:
    """Write to ``output`` the SQL that would upgrade the database, without running it (for a DBA to review).
    The database must be empty or at a known revision: one made before migrations is adopted only by
    :func:`upgrade`, which looks at its tables."""
    script = ScriptDirectory.from_config(alembic_config())
    with _engine(target) as engine:
        shown = engine.url.render_as_string(hide_password=True)
        with engine.connect() as conn:
            before = _known_revision(conn, script, shown)
            ours = set(inspect(conn).get_table_names()) & set(declared_tables())
        if before is None and ours:
            raise SchemaError(f"{shown} holds tables made before migrations ({', '.join(sorted(ours))}): "
                              "run `voicebot db upgrade` without --sql, which adopts them with their rows.")
        head = head_revision()
        config = alembic_config(output)
        config.attributes["url"] = engine.url
        if before != head:
            command.upgrade(config, f"{before}:head" if before else "head", sql=True)
    return Upgrade(shown, before, head, _between(script, before, head))


def make_revision(url: str, message: str) -> str:
    """Write a new revision comparing the models with the database at ``url`` (at head); returns its path."""
    config = alembic_config()
    with _engine(url) as engine, engine.connect() as conn:
        config.attributes["connection"] = conn
        config.attributes["target_metadata"] = declared_metadata()
        number = len(list(ScriptDirectory.from_config(config).walk_revisions())) + 1
        script = command.revision(config, message, autogenerate=True, rev_id=f"{number:04d}")
    assert script is not None and not isinstance(script, list)
    return str(script.path)


@contextmanager
def _engine(target: Engine | str) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    database = Database(target)  # its errors name the URL; SQLite: the same busy timeout and pragmas as the app
    try:
        yield database.engine
    finally:
        database.dispose()


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)  # the driver's message without SQLAlchemy's SQL and background lines
    return str(orig) if orig is not None else str(exc).splitlines()[0]


def drop_all(target: Engine | str) -> None:
    """Drop every table of the product and the revision table: all data is lost (``voicebot db init --force``)."""
    with _engine(target) as engine:
        for metadata in reversed(declared_metadata()):
            metadata.drop_all(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def _lock(conn: Connection) -> int | None:
    """Begin the upgrade's transaction holding the database's write lock: a second process upgrading at the same
    time waits, then finds the work done. Returns SQLite's busy timeout before (ms), to be put back."""
    if conn.dialect.name == "sqlite":
        before = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0)
        # The other process may be running every revision (a minute on a busy machine): wait for it longer than
        # the app's usual busy timeout. pysqlite begins no transaction before DDL by itself; IMMEDIATE takes the
        # write lock now.
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {UPGRADE_WAIT_S * 1000}")
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return before
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    return None


def _known_revision(conn: Connection, script: ScriptDirectory, shown: str) -> str | None:
    current = MigrationContext.configure(conn).get_current_revision()
    if current is None:
        return None
    try:
        script.get_revision(current)
    except (ResolutionError, CommandError):
        raise SchemaError(
            f"{shown} is at schema revision {current}, which this version of voicebot does not know (its newest is "
            f"{script.get_current_head()}): a newer voicebot has upgraded it. Run that version, or restore a "
            "backup of the database made before the upgrade.") from None
    return current


def _between(script: ScriptDirectory, before: str | None, after: str) -> tuple[Revision, ...]:
    """The revisions after ``before`` up to ``after``, oldest first (the history is one line)."""
    history = list(reversed(list(script.walk_revisions())))
    ids = [r.revision for r in history]
    start = ids.index(before) + 1 if before else 0
    return tuple(Revision(r.revision, (r.doc or "").strip().splitlines()[0] if r.doc else "")
                 for r in history[start:ids.index(after) + 1])
