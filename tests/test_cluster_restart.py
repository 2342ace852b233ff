"""A cluster node restarted under the same node id (quicker than ``cluster.node_lost_after_s``, so nobody counts it
lost) first removes what its id held in Redis before the restart: its callers talking to an agent
(``voicebot:queue:connected:*``), its waiting callers (counted abandoned and node_lost, as for a lost node) and its
agents' claims; another node's entries stay. A real redis-server and a SQLite file; the nodes are in this process."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
import redis
from cluster_helpers import RedisServer
from sqlalchemy import create_engine

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs apt-get install redis-server")


def test_cluster_node_restarted_under_its_id_clears_what_it_held_before(tmp_path: Path) -> None:
    from voicebot.cluster.redis_state import NODES, ClusterState, RedisAgentClaims, RedisQueueEntries
    from voicebot.events import EventBus
    from voicebot.storage import CallStore
    from voicebot.storage.schema import upgrade

    engine = create_engine(f"sqlite:///{tmp_path / 'shared.db'}")
    upgrade(engine)

    def before_the_restart(url: str) -> None:
        """n1 (its first run) and n2 each have a caller talking to an agent, one waiting, an agent claimed."""
        for node, n in (("n1", 1), ("n2", 2)):
            entries = RedisQueueEntries(url, node, lease_s=60.0, lost_after_s=30.0)
            entries.connected(f"talking-{n}", "general", True)
            entries.join(f"waiting-{n}", "general", f"+1555000{n}", 0, False)
            claims = RedisAgentClaims(url, node, lease_s=60.0)
            assert claims.claim(f"agent{n}", f"talking-{n}") is not None
        client = redis.Redis.from_url(url, decode_responses=True)
        seconds, _ = client.time()
        client.zadd(NODES, {"n1": seconds, "n2": seconds})  # both beating: neither is a lost node

    async def restart(url: str) -> tuple[int, list[str], list[str]]:
        bus = EventBus("n1")
        bus.bind()
        node = ClusterState(bus, CallStore(engine, bus, node_id="n1"), url, "n1", heartbeat_s=0.5, lost_after_s=30.0)
        await node.start()
        try:
            talking = await asyncio.to_thread(node.queue.connected_now, "general")
            waiting = [e.call_id for e in await asyncio.to_thread(node.queue.waiting)]
            agents = sorted(await asyncio.to_thread(node.agents.holders))
            again = await asyncio.to_thread(node.agents.claim, "agent1", "new-call")  # n1's old claim is gone
            assert again is not None
        finally:
            await node.close()
        return talking, waiting, agents

    with RedisServer() as server:
        before_the_restart(server.url)
        before = RedisQueueEntries(server.url, "n2", lease_s=60.0, lost_after_s=30.0)
        assert before.connected_now("general") == 2  # what the counts showed until now
        talking, waiting, agents = asyncio.run(restart(server.url))
        stats = RedisQueueEntries(server.url, "n2", lease_s=60.0, lost_after_s=30.0).counters("general")
    engine.dispose()

    assert talking == 1, "n1's caller from before the restart still counts as talking to an agent"
    assert waiting == ["waiting-2"]
    assert agents == ["agent2"]
    assert stats["abandoned"] == 1 and stats["node_lost"] == 1
