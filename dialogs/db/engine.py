"""Opening the customer database: one :class:`Database` per process, one session per unit of work."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import create_engine, event, func, inspect, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dialogs.db.models import Base, Customer


class DatabaseError(Exception):
    """The database named by a URL cannot be opened or used. The message names the URL (password hidden)."""


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


WAL_SWITCH_WAIT_S = 15.0  # as long as the connections' busy timeout


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # SQLite ignores foreign keys unless asked; secure_delete overwrites erased rows (GDPR erasure
    # must not leave personal data in free pages of the file).
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA secure_delete=ON")
    # Write-ahead log: readers (the dashboard's history and statistics) no longer block the writer of call
    # records and vice versa, and a commit costs one sync instead of several. synchronous stays FULL: a
    # committed transaction survives a power cut. (An in-memory database answers "memory" and stays so.)
    # Two connections switching a new file to WAL at once can deadlock on its header, and SQLite then answers
    # "database is locked" at once, without its busy timeout (two processes starting on a fresh file): retry.
    deadline = time.monotonic() + WAL_SWITCH_WAIT_S
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    cur.close()


def _create_private(path: str | None) -> None:
    """Create a missing SQLite database file readable by its owner only (calls, transcripts, password hashes);
    SQLite gives its -wal and -shm files the same mode."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # an existing file keeps the mode its operator gave it
    except OSError:
        pass  # a missing directory or no permission: SQLite's own error on connect names the problem


class Database:
    """An engine and a session factory for one SQLAlchemy URL.

    Raises :class:`DatabaseError` (naming the URL) if the URL is malformed or its driver is missing;
    a database that exists but cannot be reached is reported by :meth:`check` or the first session.
    """

    def __init__(self, url: str, echo: bool = False):
        self.url = url
        try:
            kwargs: dict[str, Any] = {"echo": echo}
            if make_url(url).get_backend_name() == "sqlite":
                _create_private(make_url(url).database)
                # The app uses sessions from a thread pool and the asyncio thread; waits instead of
                # failing at once when the CLI (gdpr, db) writes at the same time.
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 15}
            else:
                # A server restarted (PostgreSQL) leaves dead connections in the pool: test each before use.
                kwargs["pool_pre_ping"] = True
            self.engine: Engine = create_engine(url, **kwargs)
        except ModuleNotFoundError as exc:
            raise DatabaseError(
                f"cannot open database {safe_url(url)}: its driver is not installed ({exc})"
            ) from None
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise DatabaseError(f"cannot open database {safe_url(url)}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def check(self) -> None:
        """Connect once; raise :class:`DatabaseError` naming the URL if that fails."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot open database {safe_url(self.url)}: {_reason(exc)}") from None

    def create_all(self) -> None:
        """Create every missing table (existing tables and rows are left alone). For this library used alone and
        its tests: an application that migrates its schema (voicebot: ``voicebot db upgrade``) creates them so."""
        try:
            Base.metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot create tables in {safe_url(self.url)}: {_reason(exc)}") from None

    def drop_all(self) -> None:
        """Drop every table of the model (all data is lost)."""
        try:
            Base.metadata.drop_all(self.engine)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot drop tables in {safe_url(self.url)}: {_reason(exc)}") from None

    def has_tables(self) -> bool:
        """True if any table of the model exists."""
        names = set(inspect(self.engine).get_table_names())
        return any(t in names for t in Base.metadata.tables)

    def is_empty(self) -> bool:
        """True if no table of the model exists or none holds a row."""
        names = set(inspect(self.engine).get_table_names())
        with self.engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                if table.name in names and conn.execute(select(func.count()).select_from(table)).scalar():
                    return False
        return True

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed when the block ends normally and rolled back on any exception."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close all pooled connections (the SQLite file is then released)."""
        self.engine.dispose()


def _reason(exc: SQLAlchemyError) -> str:
    # The driver's own message ("unable to open database file") without SQLAlchemy's SQL/background lines.
    orig = getattr(exc, "orig", None)
    return str(orig) if orig is not None else str(exc).splitlines()[0]


def ensure_database(url: str, seed_demo: bool, now: datetime, echo: bool = False) -> Database:
    """Open ``url``, create missing tables, and seed the demo data set if asked and ``customers`` is empty.

    Safe to call at every start-up: existing data is never touched. Raises :class:`DatabaseError`."""
    from dialogs.db.demo import seed_demo as seed

    db = Database(url, echo=echo)
    db.check()
    db.create_all()
    if seed_demo:
        try:
            with db.session() as session:
                if not session.scalar(select(func.count()).select_from(Customer)):
                    seed(session, now)
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot seed demo data in {safe_url(url)}: {_reason(exc)}") from None
    return db
