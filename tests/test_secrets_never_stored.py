"""Secrets a caller gives to prove who they are (a PIN typed or said, a card's security code) are never stored,
printed or logged: a full `voicebot chat --json` run, then the JSON output, the log and every row the run added
to the database are searched for the digits. (The keypad PIN over SIP: tests/test_sip_keypad_dialog.py.)"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

from leak_helpers import assert_no_leak

from dialogs.nlu.entities import MASK, find_entities
from dialogs.nlu.normalize import normalize

PIN = "4321"  # Jane Doe's demo PIN
CVV = "8642"
SECRET_FORMS = [PIN, "4 3 2 1", "4, 3, 2, 1", CVV, "8 6 4 2", "8, 6, 4, 2"]


def dump(path: Path) -> set[str]:
    """Every row of every table of a SQLite file, as SQL lines."""
    with sqlite3.connect(path) as conn:
        return set(conn.iterdump())


def chat(tmp_path: Path, lines: list[str | dict]) -> tuple[list[dict], str, set[str]]:
    """Run `voicebot chat --json` as Jane Doe at DEBUG; the objects it printed, its log and the rows it added."""
    db = tmp_path / "bot.db"
    cfg = tmp_path / "voicebot.yaml"
    cfg.write_text(f"database:\n  url: sqlite:///{db}\n  seed_demo: true\nlog_level: DEBUG\ndialog:\n  seed: 3\n")
    env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "HF_HUB_OFFLINE": "1"}
    # The demo database first (it holds numbers of its own), so only what the chat added is searched.
    first = subprocess.run([sys.executable, "-m", "voicebot", "chat", "--json", "--config", str(cfg)], input="",
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr
    before = dump(db)
    stdin = "\n".join(json.dumps(line) if isinstance(line, dict) else line for line in lines) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "voicebot", "chat", "--json", "--caller-id", "+15551230001", "--config", str(cfg)],
        input=stdin, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr, dump(db) - before


def assert_nowhere(*texts: str) -> None:
    for text in texts:
        assert_no_leak(text, *SECRET_FORMS)


def test_a_keypad_pin_and_a_spoken_security_code_are_never_stored_printed_or_logged(tmp_path: Path) -> None:
    objs, log, added = chat(tmp_path, [
        "where is my order",
        {"dtmf": PIN + "#"},
        f"the security code on my card is {CVV}",
        "thanks bye",
    ])
    assert "verified" in objs[1]["bot"]  # the PIN did its work
    assert objs[1]["dtmf"] == MASK
    entities = objs[1]["trace"]["nlu"]["entities"]
    assert [e["type"] for e in entities] == ["pin"] and entities[0]["value"] == MASK  # not also an order number
    assert all(e["type"] != "order_number" for e in objs[2]["trace"]["nlu"]["entities"])  # the CVV is no order
    assert added, "the chat stored nothing"
    assert_nowhere(json.dumps(objs), log, "\n".join(sorted(added)))


def test_a_spoken_pin_is_masked_in_the_trace_and_the_contact(tmp_path: Path) -> None:
    objs, log, added = chat(tmp_path, ["where is my order", f"my pin is {PIN}", "thanks bye"])
    assert "verified" in objs[1]["bot"]
    assert objs[1]["user"] == MASK  # the answer to "prove who you are" is shown as a mask
    assert_nowhere(json.dumps(objs), log, "\n".join(sorted(added)))


def test_secret_entities_are_never_order_numbers() -> None:
    today = date(2026, 12, 3)
    for text, kind in [("my cvv is 123", "cvv"), ("the security code is 8642", "cvv"), ("my pin is 4321", "pin"),
                       ("card number 4111 1111 1111 1111", "card_number")]:
        found = find_entities(normalize(text), today)
        assert [e.type for e in found] == [kind], (text, found)
