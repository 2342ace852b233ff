"""An agent page that goes away is noticed at once through its events websocket, not when its WebRTC connection
fails (about 30 s later). The app in-process without models (uvicorn on loopback, real SQLite, real logins); the
page's phone is a real aiortc connection to the app's agent phones; its websocket a real client that closes, or
falls silent and stops answering the server's pings (``webrtc.agent_page_timeout_s``). A phone the page closed
makes a call ringing it fail at once with 480, not 603.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection
from app_helpers import model_less_app
from auth_helpers import add_user, cookie, login
from net_helpers import serve_app
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from telephony.sip.ua import DialError
from voicebot.config import Settings
from voicebot.server.agent_phone import AgentPhone, AgentPhones, WebLeg

TIMEOUT_S = 1.0  # the smallest agent_page_timeout_s: pings every 1/3 s


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("agent-page-gone")
    url = f"sqlite:///{tmp / 'voicebot.db'}"
    settings = Settings(database={"url": url}, privacy={"purge_daily": False},  # type: ignore[arg-type]
                        webrtc={"agent_page_timeout_s": TIMEOUT_S})  # type: ignore[arg-type]
    parts = model_less_app(url, settings)
    app = parts.create()
    # The phone route checks the agent against the queue's ACD: only alice, and only that, is looked up.
    app.state.transfer = SimpleNamespace(runner=SimpleNamespace(acd=SimpleNamespace(
        agents=lambda: [SimpleNamespace(id="alice")])))
    add_user(parts.engine, "alice", "agent", agent_id="alice")
    add_user(parts.engine, "bob", "agent", agent_id="bob")
    gone: list[str] = []
    closed = threading.Event()

    def on_phone(agent_id: str, connected: bool) -> None:  # from the server's loop
        if not connected:
            gone.append(agent_id)
            closed.set()

    app.state.phones.add_listener(on_phone)
    with serve_app(app, ws="websockets-sansio") as base:
        yield SimpleNamespace(base=base, ws=base.replace("http://", "ws://") + "/ws/events", app=app, gone=gone,
                              closed=closed)
    parts.close()


async def connect_phone(base: str, page_id: str) -> RTCPeerConnection:
    """The page's phone: a WebRTC offer to POST /api/agents/alice/phone naming the page."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        res = await http.post("/api/agents/alice/phone", headers=login(base, "alice"),
                              json={"sdp": pc.localDescription.sdp, "type": "offer", "page": page_id})
    assert res.status_code == 200, res.text
    return pc


async def next_of(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if event["type"] == kind:
            return event


def test_a_page_whose_websocket_closes_loses_its_phone_at_once(served: SimpleNamespace) -> None:
    async def main() -> None:
        served.closed.clear()
        async with httpx.AsyncClient(base_url=served.base, timeout=10) as http:
            bad = await http.post("/api/agents/alice/phone", headers=login(served.base, "alice"),
                                  json={"sdp": "v=0\r\n", "type": "offer", "page": "x" * 65})
        assert bad.status_code == 400 and "page" in bad.json()["detail"]
        pc = await connect_phone(served.base, "page-closes")
        assert served.app.state.phones.get("alice") is not None
        # Another agent's socket naming alice's page closes nothing of hers.
        async with connect(f"{served.ws}?page=page-closes&token={cookie(served.base, 'bob')}") as bob:
            await next_of(bob, "hello")
        async with connect(f"{served.ws}?page=page-closes&token={cookie(served.base, 'alice')}") as ws:
            await next_of(ws, "hello")
            assert served.app.state.phones.get("alice") is not None and not served.gone
            for _ in range(4):  # answered pings keep the page (4 pings: longer than the timeout)
                await next_of(ws, "ping")
                await ws.send('{"type":"pong"}')
            assert served.app.state.phones.get("alice") is not None
        # The tab closed: its socket's end closes the phone.
        assert await asyncio.to_thread(served.closed.wait, 10)
        assert served.gone == ["alice"] and served.app.state.phones.get("alice") is None
        await pc.close()

    served.gone.clear()
    asyncio.run(main())


def test_a_silent_page_is_gone_after_the_ping_timeout(served: SimpleNamespace) -> None:
    async def main() -> None:
        served.closed.clear()
        pc = await connect_phone(served.base, "page-silent")
        async with connect(f"{served.ws}?page=page-silent&token={cookie(served.base, 'alice')}") as ws:
            await next_of(ws, "hello")
            await next_of(ws, "ping")  # and never a pong: the network is gone
            assert await asyncio.to_thread(served.closed.wait, 10)
            assert served.gone == ["alice"] and served.app.state.phones.get("alice") is None
            with pytest.raises(ConnectionClosed):  # the server closed the silent socket too
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
        await pc.close()

    served.gone.clear()
    asyncio.run(main())


def test_a_phone_closed_while_ringing_fails_with_480_not_a_decline() -> None:
    async def main() -> None:
        phone = AgentPhone("alice", "page-1")
        ringing = asyncio.ensure_future(phone.ring("call-1", timeout=30))
        while not phone.ringing:
            await asyncio.sleep(0)
        await phone.close()
        with pytest.raises(DialError) as err:
            await ringing
        assert err.value.status == 480

    asyncio.run(main())


def test_a_page_lost_during_a_call_keeps_its_phone_until_the_call_ends() -> None:
    """A websocket blip in a bridged call does not cut the agent off the caller: the phone closes when the call
    ends, unless the page's websocket came back first (then it stays, and the page keeps its phone)."""
    async def answered_call(phones: AgentPhones, page_id: str) -> tuple[AgentPhone, WebLeg]:
        phone = phones.phones["alice"] = AgentPhone("alice", page_id)
        ringing = asyncio.ensure_future(phone.ring("call-1", timeout=30))
        while not phone.ringing:
            await asyncio.sleep(0)
        assert phone.answer()
        return phone, await ringing

    async def main() -> None:
        phones = AgentPhones()
        anyone = lambda agent_id: True  # noqa: E731
        phone, leg = await answered_call(phones, "page-1")
        assert await phones.page_closed("page-1", anyone) == []
        assert phones.get("alice") is phone and leg.state == "answered" and phone.page_lost
        await leg.hangup()
        assert phone._closing is not None
        await phone._closing
        assert phones.get("alice") is None and phone.closed.is_set()

        phone, leg = await answered_call(phones, "page-2")
        await phones.page_closed("page-2", anyone)
        assert phones.page_back("page-2", anyone) and not phone.page_lost  # the socket is back
        await leg.hangup()
        assert phone._closing is None and phones.get("alice") is phone
        assert not phones.page_back("page-1", anyone)  # the first page's phone is gone: it connects anew
        await phones.close()

    asyncio.run(main())
