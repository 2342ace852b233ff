"""Test helper for the customer-database tests: the demo data set is seeded once per test run into a
template SQLite file (scrypt PIN hashes make seeding take ~2 s) and each test gets its own copy."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest

from dialogs.db.engine import ensure_database

NOW = datetime(2026, 3, 12, 15, 30)  # a Thursday
_template: dict[str, Path] = {}


def demo_copy(tmp_path: Path, factory: pytest.TempPathFactory) -> str:
    """URL of a fresh copy of the demo database seeded at NOW."""
    if "path" not in _template:
        path = factory.mktemp("demo-template") / "demo.db"
        ensure_database(f"sqlite:///{path}", seed_demo=True, now=NOW).dispose()
        _template["path"] = path
    target = tmp_path / "demo.db"
    shutil.copyfile(_template["path"], target)
    return f"sqlite:///{target}"
