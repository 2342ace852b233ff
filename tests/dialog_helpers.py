"""Test helper for the dialog tests: the bundled domain's NLU (trained once per module) and an engine on a fresh
demo database at a fixed clock."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from dialogs.domain import load_domain
from dialogs.engine import DialogEngine, EngineOptions
from dialogs.nlu import NLU

NOW = datetime(2026, 11, 20, 10, 30)  # a Friday


def train_bundled() -> tuple:
    domain = load_domain()
    return domain, NLU.train(domain)


def demo_engine(trained: tuple, folder: Path, seed: int) -> DialogEngine:
    from dialogs.db.engine import ensure_database

    domain, nlu = trained
    db = ensure_database(f"sqlite:///{folder / 'bot.db'}", seed_demo=True, now=NOW)
    return DialogEngine(domain, nlu, db, EngineOptions(), clock=lambda: NOW, seed=seed)
