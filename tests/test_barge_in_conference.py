"""Barge-in on a call an agent has: the supervisor joins a three-way conversation. The listen API in-process with a
real aiortc supervisor (its microphone a 1 kHz tone), a real user store and a real Bridge between two call legs:
the caller and the agent both hear the supervisor on top of each other, the supervisor hears both and not
themself, a second supervisor listening in hears all three; leaving gives the call back to the two; an agent may not
join; it is audited."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from test_listen import FakeLeg, Supervisor, bearer, rms, samples, tone, tone_share, wait_until

from telephony.bridge import Bridge
from telephony.queue.live import LiveQueue
from voicebot.monitor import MONITORS
from voicebot.server.listen import router, sessions_of
from voicebot.users import UserStore


@pytest.fixture()
def app(tmp_path) -> FastAPI:
    users = UserStore.from_url(f"sqlite:///{tmp_path / 'users.db'}")
    users.add("sup", "supervisor", "pw-sup")
    users.add("ann", "agent", "pw-ann", agent_id="a1")
    app = FastAPI()
    app.include_router(router)
    app.state.users = users
    return app


def added(sent: list[bytes], base: bytes) -> list[bytes]:
    """What was mixed on top of ``base`` in the frames that are not ``base`` alone."""
    return [(samples(pcm) - samples(base)).astype("<i2").tobytes() for pcm in sent if pcm != base]


def test_a_supervisor_joins_a_bridged_call_and_both_sides_hear_them(app: FastAPI) -> None:
    async def run() -> None:
        caller, agent = FakeLeg("joined-1"), FakeLeg("agent-leg-2")
        live = LiveQueue(None, speak=None)  # type: ignore[arg-type]
        live._agent_legs["a1"] = agent  # what LiveQueue keeps once the agent answered
        live._callers["joined-1"] = SimpleNamespace(leg=caller)  # type: ignore[assignment]  # and for the caller
        app.state.transfer = SimpleNamespace(live=live, current={"a1": {"call_id": "joined-1", "status": "connected"}})
        MONITORS.begin("joined-1")
        bridge = Bridge(caller, agent)
        live.tap = lambda call_id, side, pcm: MONITORS.feed(call_id, side, pcm)  # as TransferService._tap does
        live._tap_bridge("joined-1", caller, agent)
        sup, other = Supervisor(), Supervisor()
        headers = bearer(app, "sup")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            # Another supervisor listens in (listen only: their own microphone goes nowhere).
            res = await client.post("/api/live/joined-1/listen", json=await other.offer(), headers=headers)
            assert res.status_code == 200, res.text
            await other.answer(res.json())
            other_pc = res.json()["pc_id"]
            offer = await sup.offer()
            refused = await client.post("/api/live/joined-1/takeover", json=offer, headers=bearer(app, "ann"))
            assert refused.status_code == 403
            res = await client.post("/api/live/joined-1/takeover", json=offer, headers=headers)
            assert res.status_code == 200, res.text
            body = res.json()
            assert body["mode"] == "conference"
            await sup.answer(body)
            await wait_until(lambda: sup.pc.connectionState == other.pc.connectionState == "connected")
            caller_says, agent_says = tone(300, 3000), tone(500, 3000)
            for _ in range(150):  # 3 s of both sides talking, in real time, as RTP would deliver it
                caller.hear(caller_says)
                agent.hear(agent_says)
                await asyncio.sleep(0.02)
            # Both sides hear the other and, on top, the supervisor's tone.
            for leg, base in ((caller, agent_says), (agent, caller_says)):
                extra = added(leg.sent, base)
                assert len(extra) >= 50, f"only {len(extra)} of {len(leg.sent)} frames carried the supervisor"
                assert np.median([tone_share(x) for x in extra]) > 0.5
            # The supervisor hears the call (caller and agent), not their own tone.
            loud = [pcm for pcm in sup.received if rms(pcm) > 1000]
            assert len(loud) >= 50
            assert np.median([tone_share(pcm) for pcm in loud]) < 0.2
            # The other listener hears the supervisor who joined, as part of the call, on top of caller and agent.
            loud = [pcm for pcm in other.received if rms(pcm) > 1000]
            joined = [pcm for pcm in loud if tone_share(pcm) > 0.5]
            assert len(joined) >= 50, f"only {len(joined)} of {len(loud)} loud frames carried the joined supervisor"
            audit = app.state.users.audit_log(call_id="joined-1")
            assert [(r["username"], r["action"]) for r in audit] == [("sup", "join"), ("sup", "listen")]  # newest first
            # Leaving gives the call back to the caller and the agent, who stay connected.
            res = await client.delete(f"/api/live/joined-1/listen/{body['pc_id']}", headers=headers)
            assert res.status_code == 200
            assert list(sessions_of(app).sessions) == [other_pc]  # the listener stays
            caller_before, agent_before = len(caller.sent), len(agent.sent)
            caller.hear(caller_says)
            agent.hear(agent_says)
            assert caller.sent[caller_before:] == [agent_says] and agent.sent[agent_before:] == [caller_says]
            assert caller.state == agent.state == "answered"
        bridge.stop()
        MONITORS.end("joined-1")
        await sup.close()
        await other.close()

    asyncio.run(run())
