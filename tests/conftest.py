"""Fixtures shared by test modules.

``shared_cluster``: one `voicebot cluster up --nodes 3` (Kamailio, PostgreSQL, Redis, three nodes; a supervisor
``sup``) for the cluster tests of tests/test_cluster_front.py and tests/test_cluster_queue.py, which take it
through their ``cluster`` fixture (:meth:`cluster_helpers.SharedCluster.ready`: a node a test killed is started
again first). The tests that use it run last, together, so the cluster is started once and stopped right after
them rather than idling through the other modules.

``postgres_url``: a throwaway PostgreSQL database for the tests that run the same code on PostgreSQL. It is
``$VOICEBOT_TEST_POSTGRES_URL`` when set (its voicebot tables are dropped), else a PostgreSQL server this run starts
from the Debian packages (initdb in a temporary folder, a free loopback port, stopped at the end of the run); the
tests skip, saying why, only when neither is possible."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_helpers import add_user
from call_models import CALL_FLOW_MODELS_YAML
from cluster_helpers import SHARED_CLUSTER_CONFIG, PostgresServer, SharedCluster, cluster_programs_missing


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


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedCluster]:
    """The 3-node cluster the cluster tests share (see the module docstring)."""
    missing = cluster_programs_missing()
    if missing:
        pytest.skip(missing)
    with SharedCluster(tmp_path_factory.mktemp("cluster"), 3, SHARED_CLUSTER_CONFIG + CALL_FLOW_MODELS_YAML) as shared:
        add_user(shared.ready().postgres_url, "sup", "supervisor")
        yield shared


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The shared cluster's tests last, in their order (a stable sort): see the module docstring.
    items.sort(key=lambda item: "shared_cluster" in getattr(item, "fixturenames", ()))
