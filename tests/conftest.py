"""Fixtures shared by test modules.

``shared_cluster``: one `voicebot cluster up --nodes 3` (Kamailio, PostgreSQL, Redis, three nodes; a supervisor
``sup``) for the cluster tests of tests/test_cluster_front.py and tests/test_cluster_queue.py, which take it
through their ``cluster`` fixture (:meth:`cluster_helpers.SharedCluster.ready`: a node a test killed is started
again first). The tests that use it run last, together, so the cluster is started once and stopped right after
them rather than idling through the other modules.

``postgres_url``: a throwaway PostgreSQL database for the tests that run the same code on PostgreSQL. It is
``$VOICEBOT_TEST_POSTGRES_URL`` when set (its voicebot tables are dropped), else a PostgreSQL server this run starts
from the Debian packages (initdb in a temporary folder, a free loopback port, stopped at the end of the run); the
tests skip, saying why, only when neither is possible.

pytest-xdist (``-n 2 --dist loadgroup`` in pyproject.toml's addopts) runs the suite in two worker processes: most
of it waits on real-time audio, not on the CPU. Each worker takes whole groups of tests (:func:`xdist_group`): a
test file is a group, so its module fixtures start once; the cluster files are one group, run one after the other
on one worker, because they share ``shared_cluster`` and are the heaviest on the CPU (kamailio, PostgreSQL, Redis and
three nodes each). Groups go out in collection order, so the longest start first (:data:`LONG_FIRST`) and the
workers end together. Every test takes its ports from net_helpers (a port bound to 0, or an RTP range from the
worker's own block), never a fixed number, so the two workers never collide.

``trained`` and ``engine``: the bundled domain with its trained NLU (once per module) and a dialog engine on a
fresh demo database at :data:`dialog_helpers.NOW` with seed 3 (per test), for the dialog tests. A module whose
engine differs (another seed, clock, options or database) defines its own ``engine``, which takes precedence.
``nlu``: that trained NLU alone, for the NLU tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_helpers import add_user
from call_models import CALL_FLOW_MODELS_YAML
from cluster_helpers import SHARED_CLUSTER_CONFIG, PostgresServer, SharedCluster, cluster_programs_missing
from dialog_helpers import demo_engine, train_bundled

from dialogs.engine import DialogEngine
from dialogs.nlu import NLU

CLUSTER_GROUP = "cluster"
# The groups that take longest (measured with --durations=0 on the 2-core machine), longest first; the rest follow
# in file order. Update it when a file grows slow: a long group handed out last keeps one worker busy alone.
LONG_FIRST = (
    CLUSTER_GROUP, "test_transfer_webrtc_caller", "test_conversations", "test_web_attacks", "test_cli_config_chat",
    "test_faults", "test_e2e_webrtc", "test_recording_sip", "test_barge_in", "test_listen", "test_nlu_cli",
    "test_secrets_never_stored", "test_transfer_e2e", "test_agent_page_assist_browser", "test_supervisor_browser",
    "test_telephony_baresip", "test_sip_keypad_dialog", "test_migrations", "test_agent_page_browser",
    "test_transfer_webrtc",
)
_running: list[SharedCluster] = []  # the shared cluster while it runs, for its early stop below


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


@pytest.fixture(scope="module")
def trained() -> tuple:
    """The bundled domain and its trained NLU (see the module docstring)."""
    return train_bundled()


@pytest.fixture(scope="module")
def nlu(trained: tuple) -> NLU:
    """The NLU trained on the bundled domain (see the module docstring)."""
    return trained[1]


@pytest.fixture()
def engine(trained: tuple, tmp_path: Path) -> DialogEngine:
    """A dialog engine on a fresh demo database (see the module docstring)."""
    return demo_engine(trained, tmp_path, seed=3)


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedCluster]:
    """The 3-node cluster the cluster tests share (see the module docstring)."""
    missing = cluster_programs_missing()
    if missing:
        pytest.skip(missing)
    with SharedCluster(tmp_path_factory.mktemp("cluster"), 3, SHARED_CLUSTER_CONFIG + CALL_FLOW_MODELS_YAML) as shared:
        add_user(shared.ready().postgres_url, "sup", "supervisor")
        _running.append(shared)
        yield shared
        _running.clear()


def xdist_group(item: pytest.Item) -> str:
    """The group of tests one pytest-xdist worker runs together: the test file, or the cluster group."""
    name = item.path.stem
    return CLUSTER_GROUP if name.startswith("test_cluster_") else name


def _uses_shared_cluster(item: pytest.Item | None) -> bool:
    return item is not None and "shared_cluster" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which names each test after its group
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item)))

    # The longest groups first; within a group the shared cluster's tests last, in their order (a stable sort).
    def rank(item: pytest.Item) -> tuple[int, bool]:
        group = xdist_group(item)
        return (LONG_FIRST.index(group) if group in LONG_FIRST else len(LONG_FIRST)), _uses_shared_cluster(item)

    items.sort(key=rank)


@pytest.hookimpl(trylast=True)  # after the test's own fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # The shared cluster stops right after its last test rather than idling on through the worker's other groups.
    if _running and _uses_shared_cluster(item) and not _uses_shared_cluster(nextitem):
        _running.pop().stop()
