"""Fixtures shared by test modules.

``postgres_url``: a throwaway PostgreSQL database for the tests that run the same code on PostgreSQL. It is
``$VOICEBOT_TEST_POSTGRES_URL`` when set (its voicebot tables are dropped), else a PostgreSQL server this run starts
from the Debian packages (initdb in a temporary folder, a free loopback port, stopped at the end of the run); the
tests skip, saying why, only when neither is possible."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import PostgresServer


def postgres_missing() -> str | None:
    """Why no PostgreSQL can be started for the tests, else None."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return ("PostgreSQL not installed (apt-get install postgresql) and VOICEBOT_TEST_POSTGRES_URL not set "
                "to a throwaway database")
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database URL whose voicebot tables the tests may drop (see the module docstring)."""
    given = os.environ.get("VOICEBOT_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    missing = postgres_missing()
    if missing:
        pytest.skip(missing)
    with PostgresServer() as server:
        yield server.url
