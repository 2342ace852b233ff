"""`voicebot db` and `voicebot gdpr` as an integrator runs them, against real SQLite files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from demo_db import demo_copy

from voicebot.cli import cli


def config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "voicebot.yaml"
    path.write_text(f"database:\n  url: {json.dumps(url)}\nmemory:\n  contact_retention_days: 30\n")
    return str(path)


def voicebot(*args: str, stdin: str | None = None) -> Result:
    result = CliRunner().invoke(cli, list(args), input=stdin)
    # Exits are fine; any other exception would have been a traceback for the user.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture()
def demo_config(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return config(tmp_path, demo_copy(tmp_path, tmp_path_factory))


def test_db_init_creates_seeds_and_refuses_to_overwrite(tmp_path):
    cfg = config(tmp_path, f"sqlite:///{tmp_path / 'new.db'}")
    first = voicebot("db", "init", "--demo", "--config", cfg)
    assert first.exit_code == 0, first.output
    assert "Jane Doe" in first.output and "PIN 4321" in first.output

    refused = voicebot("db", "init", "--config", cfg)
    assert refused.exit_code == 1 and "already holds data" in refused.output and "--force" in refused.output
    assert "customers      52" in voicebot("db", "status", "--config", cfg).output

    forced = voicebot("db", "init", "--force", "--config", cfg)
    assert forced.exit_code == 0
    assert "customers      0" in voicebot("db", "status", "--config", cfg).output


def test_db_commands_name_an_unusable_url_without_a_traceback(tmp_path):
    missing_dir = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"
    result = voicebot("db", "init", "--config", config(tmp_path, missing_dir))
    assert result.exit_code == 1 and missing_dir in result.output
    secret = voicebot("gdpr", "export", "--customer", "1", "--config",
                      config(tmp_path, "nosuchdb://admin:hunter2@db.internal/voicebot"))
    assert secret.exit_code == 1 and "hunter2" not in secret.output and "db.internal" in secret.output
    empty = voicebot("gdpr", "export", "--customer", "1", "--config", config(tmp_path, f"sqlite:///{tmp_path / 'e.db'}"))
    assert empty.exit_code == 1 and "voicebot db init" in empty.output


def test_the_installed_command_reports_a_bad_url_cleanly(tmp_path):
    url = f"sqlite:///{tmp_path / 'absent' / 'x.db'}"
    proc = subprocess.run([sys.executable, "-m", "voicebot", "db", "init", "--config", config(tmp_path, url)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 1 and url in proc.stderr and "Traceback" not in proc.stderr


def test_gdpr_export_prints_json_and_rejects_unknown_customers(demo_config, tmp_path):
    result = voicebot("gdpr", "export", "--customer", "2", "--config", demo_config)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["customer"]["email"] == "john.smith@example.com" and data["returns"][0]["order_number"] == "63950"
    out = tmp_path / "john.json"
    assert voicebot("gdpr", "export", "--customer", "2", "-o", str(out), "--config", demo_config).exit_code == 0
    assert json.loads(out.read_text()) == data
    unknown = voicebot("gdpr", "export", "--customer", "999", "--config", demo_config)
    assert unknown.exit_code == 1 and "no customer with id 999" in unknown.output


def test_gdpr_delete_asks_first_then_erases_and_says_what_is_kept(demo_config):
    declined = voicebot("gdpr", "delete", "--customer", "2", "--config", demo_config, stdin="n\n")
    assert declined.exit_code != 0 and "John Smith" in declined.output
    assert voicebot("gdpr", "export", "--customer", "2", "--config", demo_config).exit_code == 0

    done = voicebot("gdpr", "delete", "--customer", "2", "--yes", "--config", demo_config)
    assert done.exit_code == 0, done.output
    assert "anonymised" in done.output and "accounting" in done.output
    assert voicebot("gdpr", "export", "--customer", "2", "--config", demo_config).exit_code == 1
    again = voicebot("gdpr", "delete", "--customer", "2", "--yes", "--config", demo_config)
    assert again.exit_code == 1 and "no customer with id 2" in again.output


def test_gdpr_purge_uses_the_configured_retention(demo_config):
    # The demo's past contacts reach back 60 days; the config keeps 30.
    first = voicebot("gdpr", "purge", "--config", demo_config)
    assert first.exit_code == 0 and "older than 30 days" in first.output
    assert not first.output.startswith("Purged 0 ")
    assert voicebot("gdpr", "purge", "--config", demo_config).output.startswith("Purged 0 ")


def _record_calls(url: str) -> None:
    """Three call records: one where the bot identified John Smith (customer 2), one from his number, one old
    call of someone else, 90 days ago."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from voicebot.storage import CallStore
    from voicebot.storage.models import CallRow

    store = CallStore.from_url(url)
    now = datetime.now(UTC)
    for call_id, caller in (("identified", None), ("from-his-phone", "+15551230002"), ("old", "+15559990000")):
        store.open_call(call_id, "sip", caller)
        store.add_turn(call_id, "caller", f"words of {call_id}", now)
        store.close_call(call_id, "resolved", "caller_hangup")
    store.set_customer("identified", 2)
    with store.engine.begin() as conn:
        conn.execute(update(CallRow).where(CallRow.id == "old").values(start=now - timedelta(days=90)))
    store.close()
    store.engine.dispose()


def _call(url: str, call_id: str) -> dict:
    from voicebot.storage import CallStore

    store = CallStore.from_url(url)
    try:
        return store.get(call_id)
    finally:
        store.engine.dispose()


def test_gdpr_export_delete_and_purge_cover_call_records(tmp_path, tmp_path_factory):
    url = demo_copy(tmp_path, tmp_path_factory)
    cfg = config(tmp_path, url)
    _record_calls(url)

    exported = json.loads(voicebot("gdpr", "export", "--customer", "2", "--config", cfg).stdout)
    assert sorted(c["id"] for c in exported["calls"]) == ["from-his-phone", "identified"]
    assert exported["calls"][0]["turns"][0]["text"].startswith("words of")

    done = voicebot("gdpr", "delete", "--customer", "2", "--yes", "--config", cfg)
    assert done.exit_code == 0 and "2 call record(s) erased" in done.output, done.output
    for call_id in ("identified", "from-his-phone"):
        erased = _call(url, call_id)
        assert erased["turns"] == [] and erased["caller_id"] is None
        assert erased["outcome"] == "resolved"  # the anonymous shell stays for statistics
    assert _call(url, "old")["turns"]  # someone else's call is untouched

    purged = voicebot("gdpr", "purge", "--config", cfg)
    assert purged.exit_code == 0 and "and 1 call record(s)" in purged.output, purged.output
    old = _call(url, "old")
    assert old["turns"] == [] and old["caller_id"] is None
