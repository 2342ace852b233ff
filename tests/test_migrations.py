"""Schema migrations (voicebot.storage.schema): a database of the code before migrations upgrades in place with
its rows, a fresh one at head is exactly what the models declare, and what cannot be upgraded is said clearly."""

from __future__ import annotations

import importlib
import io
import json
import logging
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from voicebot.storage import CallStore
from voicebot.storage.retention import erase_calls
from voicebot.storage.schema import (
    SchemaError,
    current_revision,
    declared_metadata,
    declared_tables,
    drop_all,
    head_revision,
    prepare,
    revisions,
    upgrade,
    upgrade_sql,
)

OLD_SCHEMA = Path(__file__).parent / "data" / "voicebot_cb5a9b1.sql"
# Indexes the models declared at cb5a9b1 that its databases lacked (columns added by the old migrator).
MISSING_AT_CB5A9B1 = {"ix_voicebot_calls_frustration_max", "ix_voicebot_calls_agent_id", "ix_voicebot_calls_customer_id"}


def voicebot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "voicebot", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "voicebot.yaml"
    path.write_text(f"database:\n  url: {json.dumps(url)}\n")
    return str(path)


def old_database(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA.read_text())
    return f"sqlite:///{path}"


def rows(path: Path, like: dict[str, list[tuple]] | None = None) -> dict[str, list[tuple]]:
    """Every row of every table; with ``like``, only the tables and columns of that earlier reading (later
    revisions add tables and nullable columns)."""
    with sqlite3.connect(path) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        out = {}
        for n in names:
            if n == "alembic_version" or (like is not None and n not in like):
                continue
            columns = [c[1] for c in conn.execute(f'PRAGMA table_info("{n}")')]
            if like is not None:
                columns = OLD_COLUMNS[n]
            out[n] = sorted(conn.execute(f'SELECT {", ".join(columns)} FROM "{n}"').fetchall(), key=repr)
            if like is None:
                OLD_COLUMNS.setdefault(n, columns)
        return out


OLD_COLUMNS: dict[str, list[str]] = {}
# Tables revisions after 0002 added: the old database has none of them.
NEW_TABLES = {"voicebot_call_notes", "voicebot_call_intents", "voicebot_recordings", "voicebot_alerts"}


def indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        found = inspect(engine)
        return {i["name"] for t in found.get_table_names() for i in found.get_indexes(t)}
    finally:
        engine.dispose()


def schema_diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), declared_metadata())
    finally:
        engine.dispose()


def declared_indexes() -> set[str]:
    return {str(i.name) for t in declared_tables().values() for i in t.indexes}


def test_a_database_from_before_migrations_upgrades_in_place_with_every_row(tmp_path: Path) -> None:
    path = tmp_path / "voicebot.db"
    url = old_database(path)
    before = rows(path)
    assert all(before[name] for name in declared_tables() if name not in NEW_TABLES), "rows in every old table"
    assert not MISSING_AT_CB5A9B1 & indexes(url)
    cfg = config(tmp_path, url)

    done = voicebot("db", "upgrade", "--config", cfg, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    head = head_revision()
    assert str(path) in done.stdout and f"from no revision to schema revision {head}" in done.stdout
    assert "0001  The schema of voicebot before migrations" in done.stdout and "0002  Indexes" in done.stdout
    assert "0004  Call records name the cluster node" in done.stdout

    assert rows(path, like=before) == before  # every row of every table, unchanged
    assert indexes(url) >= MISSING_AT_CB5A9B1 | declared_indexes()
    assert schema_diff(url) == []
    assert current_revision(url) == head_revision()
    again = voicebot("db", "upgrade", "--config", cfg, cwd=tmp_path)
    assert again.returncode == 0 and f"is up to date at schema revision {head}" in again.stdout
    assert f"schema revision {head} (the newest)" in voicebot("db", "current", "--config", cfg, cwd=tmp_path).stdout

    # The application reads the old rows through its stores.
    store = CallStore.from_url(url)
    [call], total = store.search(intent="order_status")
    assert total == 1 and call["id"] == "call-1" and call["frustration_max"] == 0.35
    assert [t["text"] for t in store.get("call-1")["turns"]] == ["where is my order 45281", "It is on its way."]
    store.close()
    listed = voicebot("users", "list", "--config", cfg, cwd=tmp_path)
    assert listed.returncode == 0 and "alice" in listed.stdout


def test_db_init_refuses_a_database_with_data_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "voicebot.db"
    url = old_database(path)
    before = rows(path)
    refused = voicebot("db", "init", "--config", config(tmp_path, url), cwd=tmp_path)
    assert refused.returncode == 1 and "already holds data; nothing changed" in refused.stderr
    assert rows(path) == before and current_revision(url) is None


def test_erasure_reaches_the_hand_off_rows_through_the_registry(tmp_path: Path) -> None:
    url = old_database(tmp_path / "voicebot.db")
    upgrade(url)
    engine = create_engine(url)
    assert erase_calls(engine, customer_id=1, phones=["+15551230001"]).calls == 1
    with engine.connect() as conn:
        for table in ("voicebot_call_turns", "voicebot_transfer_turns", "voicebot_voicemails"):
            assert conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar() == 0, table
        assert conn.exec_driver_sql("SELECT count(*) FROM voicebot_transfers").scalar() == 1  # statistics stay
    engine.dispose()


def test_a_fresh_database_at_head_has_exactly_the_declared_tables_and_indexes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert current_revision(url) is None
    result = upgrade(url)
    assert result.before is None and result.after == head_revision() == revisions()[-1].id
    assert [r.id for r in result.applied] == [r.id for r in revisions()]
    assert schema_diff(url) == []
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) == set(declared_tables()) | {"alembic_version"}
    engine.dispose()
    assert indexes(url) == declared_indexes()
    assert upgrade(url).applied == ()


def test_a_database_made_by_create_all_of_the_dialogs_library_alone_is_adopted(tmp_path: Path) -> None:
    from dialogs.db.engine import ensure_database

    url = f"sqlite:///{tmp_path / 'dialogs.db'}"
    ensure_database(url, seed_demo=False, now=datetime(2026, 12, 1)).dispose()  # only the customer tables
    upgrade(url)
    assert schema_diff(url) == []


def test_a_database_at_an_unknown_newer_revision_is_refused_clearly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    upgrade(url)
    with sqlite3.connect(tmp_path / "newer.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(SchemaError, match="0099.*does not know.*newer voicebot"):
        upgrade(url)
    cfg = config(tmp_path, url)
    for command in (["db", "upgrade"], ["db", "current"]):
        refused = voicebot(*command, "--config", cfg, cwd=tmp_path)
        assert refused.returncode == 1 and "0099" in refused.stderr + refused.stdout, command
        assert "newer voicebot" in refused.stderr + refused.stdout and "Traceback" not in refused.stderr


def test_a_table_of_the_same_name_that_is_not_ours_stops_the_upgrade_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(SchemaError, match="customers lacks the column.*first_name"):
        upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        assert [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["customers"]


def test_upgrade_sql_prints_the_script_and_runs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "dba.db"
    out = io.StringIO()
    result = upgrade_sql(f"sqlite:///{path}", out)
    assert result.after == head_revision() and "CREATE TABLE customers" in out.getvalue()
    assert "CREATE INDEX IF NOT EXISTS ix_voicebot_calls_agent_id" in out.getvalue()
    assert current_revision(f"sqlite:///{path}") is None
    old = old_database(tmp_path / "old.db")
    with pytest.raises(SchemaError, match="without --sql"):
        upgrade_sql(old, io.StringIO())
    printed = voicebot("db", "upgrade", "--sql", "--config", config(tmp_path, f"sqlite:///{path}"), cwd=tmp_path)
    assert printed.returncode == 0 and "CREATE TABLE voicebot_calls" in printed.stdout


def test_without_auto_upgrade_an_old_database_is_refused_with_what_to_run(tmp_path: Path) -> None:
    url = old_database(tmp_path / "voicebot.db")
    with pytest.raises(SchemaError, match="voicebot db upgrade"):
        prepare(url, auto_upgrade=False)
    assert current_revision(url) is None
    prepare(url)
    assert prepare(url, auto_upgrade=False).after == head_revision()


def upgrade_twice_at_once(url: str) -> list:
    """Two upgrades of one database started together (as two processes starting at once); their results."""
    results, errors = [], []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        try:
            results.append(upgrade(url))
        except Exception as exc:  # the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return results


def test_two_processes_upgrading_at_once_upgrade_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    assert sorted(len(r.applied) for r in upgrade_twice_at_once(url)) == [0, len(revisions())]
    assert schema_diff(url) == []


def test_the_start_up_upgrade_logs_the_database_and_its_revision(tmp_path: Path, caplog) -> None:
    url = old_database(tmp_path / "voicebot.db")
    with caplog.at_level(logging.INFO, logger="voicebot.storage.schema"):
        prepare(url)  # what `voicebot serve` and `voicebot chat` call first (database.auto_upgrade: true)
        prepare(url)
    lines = [r.getMessage() for r in caplog.records if r.name == "voicebot.storage.schema"]
    assert lines[-3] == "database made before migrations adopted: 18 of 18 tables kept"
    assert f"database {url} upgraded from no revision to revision {head_revision()}" in lines[-2]
    assert lines[-1] == f"database {url} at revision {head_revision()} (up to date)"


def test_the_migrations_on_postgresql(postgres_url: str) -> None:
    """As test_db_postgres.py: a throwaway database (every voicebot table is dropped)."""
    drop_all(postgres_url)
    try:
        # A database as the code before migrations made it: create_all of its tables (revision 1 writes them out),
        # three indexes missing.
        engine = create_engine(postgres_url)
        importlib.import_module("voicebot.storage.migrations.versions.0001_schema_before_migrations").TABLES.create_all(engine)
        with engine.begin() as conn:
            for name in MISSING_AT_CB5A9B1:
                conn.exec_driver_sql(f"DROP INDEX {name}")
            conn.exec_driver_sql("INSERT INTO voicebot_calls (id, channel, start) VALUES ('old-1', 'sip', now())")
        engine.dispose()
        assert sorted(len(r.applied) for r in upgrade_twice_at_once(postgres_url)) == [0, len(revisions())]
        assert current_revision(postgres_url) == head_revision() and schema_diff(postgres_url) == []
        assert indexes(postgres_url) >= MISSING_AT_CB5A9B1
        store = CallStore.from_url(postgres_url)
        assert store.get("old-1")["channel"] == "sip"
        store.close()
        store.engine.dispose()
        drop_all(postgres_url)
        assert [r.id for r in upgrade(postgres_url).applied] == [r.id for r in revisions()] and schema_diff(postgres_url) == []
    finally:
        drop_all(postgres_url)
