"""Additive schema upgrades: a table that exists but lacks a newer nullable column gets it.

``create_all`` creates missing tables but never changes existing ones, so a database made by an older
version would fail on the first query of a new column. Only adding nullable columns is done here; anything
else (renames, type changes) needs a real migration tool.
"""

from __future__ import annotations

import logging

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)


def add_missing_columns(engine: Engine, metadata: MetaData) -> list[str]:
    """Add nullable columns that ``metadata`` declares but the database lacks. Returns ``table.column`` added."""
    added: list[str] = []
    inspector = inspect(engine)
    existing_tables = set(inspector.get_table_names())
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if table.name not in existing_tables:
                continue
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in have or not column.nullable:
                    continue
                ddl = column.type.compile(dialect=engine.dialect)
                conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {ddl}'))
                added.append(f"{table.name}.{column.name}")
    for name in added:
        log.info("database upgraded: added column %s", name)
    return added
