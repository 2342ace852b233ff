"""Barge-in on a real call: a SIP caller (our user agent) talks with the bot of `voicebot serve`; a supervisor (an
aiortc peer whose microphone is a 1 kHz tone) takes the call over. From then on the caller hears the supervisor
and no more of the bot, even when they ask the bot something; the supervisor hears the caller (a 400 Hz tone); the
record and the live call say who took over; the take-over is audited; an agent may not barge in. The supervisor
hanging up ends the call; the caller hanging up ends the supervisor's connection."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
from auth_helpers import add_user, login
from call_models import CALL_FLOW_MODELS
from net_helpers import rtp_ports, sip_port
from sqlalchemy import create_engine, select
from test_listen_bridge import Phone, SipCaller, loud, until
from test_transfer_live import frames_at, tone

from audio.speech import espeak_ng
from voicebot.client.local_server import ServerProcess
from voicebot.storage.models import CallRow, TurnRow
from voicebot.users import UserStore

pytestmark = pytest.mark.slow

SUPERVISOR_HZ, CALLER_HZ = 1000, 400


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    """One server for the module's tests (each places a call of its own), its SIP port; a supervisor and an agent."""
    port = sip_port()
    config = {
        "models": CALL_FLOW_MODELS,
        "sip": {"enabled": True, "listen_udp": f"127.0.0.1:{port}", "listen_tcp": f"127.0.0.1:{port}",
                **rtp_ports(50)},
        "call": {"greeting": "Hello, this is the Acme assistant. How can I help?"},
    }
    with ServerProcess(tmp_path_factory.mktemp("barge_in") / "server", config, start_timeout_s=300) as server:
        add_user(server.config["database"]["url"], "sup", "supervisor")
        add_user(server.config["database"]["url"], "ann", "agent")
        yield server, port


@pytest.mark.parametrize("who_hangs_up", ["supervisor", "caller"])
def test_a_supervisor_takes_a_sip_call_over_from_the_bot(served: tuple[ServerProcess, int], who_hangs_up: str) -> None:
    server, port = served
    speech, _ = espeak_ng("Where is my order? What are your opening hours?", rate=150, sample_rate=16000)
    question = (speech * 20000).astype(np.int16).tobytes()
    caller_tone = tone(CALLER_HZ, 2.0, level=6000).tobytes()

    db = server.config["database"]["url"]
    sup_auth, agent_auth = login(server.url, "sup"), login(server.url, "ann")

    async def run() -> dict[str, Any]:
        caller, sup = SipCaller(port), Phone(SUPERVISOR_HZ)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            try:
                call_id = await caller.dial(server.url)
                url = f"/api/live/{urllib.parse.quote(call_id, safe='')}/takeover"
                await until(lambda: any(loud(p) for p in caller.heard), 30, "the greeting")
                await until(lambda: not any(loud(p) for p in caller.heard[-40:]), 30, "the end of the greeting")
                offer = await sup.offer()
                codes = {
                    "anonymous": (await http.post(url, json=offer)).status_code,
                    "agent": (await http.post(url, json=offer, headers=agent_auth)).status_code,
                    "unknown call": (await http.post("/api/live/nope/takeover", json=offer,
                                                     headers=sup_auth)).status_code,
                    "bad sdp": (await http.post(url, json={"sdp": "v=0 m=audio", "type": "offer"},
                                                headers=sup_auth)).status_code,
                }
                res = await http.post(url, json=offer, headers=sup_auth)
                assert res.status_code == 200, res.text
                taken_at = datetime.now(UTC)
                await sup.answer(res.json())
                again = await http.post(url, json=await Phone(SUPERVISOR_HZ).offer(), headers=sup_auth)
                live = (await http.get(f"/api/live/{urllib.parse.quote(call_id, safe='')}",
                                       headers=sup_auth)).json()
                taken = len(caller.heard)
                # The caller asks the bot a question (it would answer), then says a steady tone.
                await caller.say(question)
                await caller.say(caller_tone)
                await until(lambda: sup.tone_frames(CALLER_HZ) > 40, 20, "the supervisor hearing the caller")
                await asyncio.sleep(3.0)  # time in which the bot would have answered the question
                heard_after = list(caller.heard[taken:])
                if who_hangs_up == "supervisor":
                    res = await http.delete(f"/api/live/{urllib.parse.quote(call_id, safe='')}/listen/"
                                            f"{res.json()['pc_id']}", headers=sup_auth)
                    assert res.status_code == 200, res.text
                    await until(lambda: caller.leg.state == "ended", 20, "the caller's call to end")
                else:
                    await caller.hangup()
                    await until(lambda: sup.pc.connectionState in ("closed", "failed"), 30,
                                "the supervisor's connection to close")
            finally:
                await caller.close()
                await sup.close()
        return {"call_id": call_id, "codes": codes, "again": again.status_code, "live": live,
                "heard_after": heard_after, "taken_at": taken_at, "sup": sup}

    out = asyncio.run(run())
    engine = create_engine(db)
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while True:  # the record is closed once the server has seen the leg end
            row = conn.execute(select(CallRow).where(CallRow.id == out["call_id"])).one()
            if row.end is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        bot_turns = conn.execute(select(TurnRow.start).where(TurnRow.call_id == out["call_id"],
                                                             TurnRow.speaker == "bot")).scalars().all()
    audit = UserStore(engine).audit_log(call_id=out["call_id"])

    assert out["codes"] == {"anonymous": 401, "agent": 403, "unknown call": 404, "bad sdp": 400}
    assert out["again"] == 409  # taken over already
    assert out["live"]["state"] == "supervisor" and out["live"]["taken_over_by"] == "sup"
    heard = np.frombuffer(b"".join(out["heard_after"]), np.int16)
    assert frames_at(heard, 16000, SUPERVISOR_HZ) > 100, "the caller should hear the supervisor"
    loud_frames = sum(loud(p) for p in out["heard_after"])
    assert loud_frames - frames_at(heard, 16000, SUPERVISOR_HZ) <= 5, "the caller heard something besides the supervisor"
    assert out["sup"].tone_frames(SUPERVISOR_HZ) <= 2, "the supervisor's own voice came back to them"
    assert row.outcome == "taken_over" and row.taken_over_by == "sup"
    assert row.end_reason == f"{who_hangs_up}_hangup"
    assert row.taken_over_at is not None
    taken_over_at = row.taken_over_at.replace(tzinfo=UTC)
    assert abs((taken_over_at - out["taken_at"]).total_seconds()) < 5
    assert all(start.replace(tzinfo=UTC) < taken_over_at for start in bot_turns), "the bot spoke after the take-over"
    # (open_call: the supervisor read the live call above)
    assert [(r["username"], r["action"]) for r in audit] == [("sup", "open_call"), ("sup", "takeover")]


def test_a_supervisor_hands_a_taken_over_call_back_to_the_bot(served: tuple[ServerProcess, int]) -> None:
    """The caller asks the bot something that needs an answer from them, a supervisor takes the call over and hands
    it back: the supervisor's connection closes without hanging up, the bot says it is back and asks its pending
    question again, the live call is the bot's again, and the caller then hangs up on a call the bot ended."""
    server, port = served
    speech, _ = espeak_ng("Where is my order?", rate=150, sample_rate=16000)
    question = (speech * 20000).astype(np.int16).tobytes()

    db = server.config["database"]["url"]
    sup_auth, agent_auth = login(server.url, "sup"), login(server.url, "ann")

    async def run() -> dict[str, Any]:
        caller, sup = SipCaller(port), Phone(SUPERVISOR_HZ)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            try:
                call_id = await caller.dial(server.url)
                quoted = urllib.parse.quote(call_id, safe="")

                async def bot_turns() -> list[dict[str, Any]]:
                    res = await http.get(f"/api/calls/{quoted}", headers=sup_auth)
                    return [t for t in res.json().get("turns", []) if t["speaker"] == "bot"] if res.is_success else []

                async def bot_said(n: int) -> list[dict[str, Any]]:
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        turns = await bot_turns()
                        if len(turns) >= n and turns[n - 1]["end"] is not None:
                            return turns
                        await asyncio.sleep(0.1)
                    raise AssertionError(f"the bot did not say its turn {n}")

                await bot_said(1)
                await caller.say(question)
                asked = (await bot_said(2))[1]["text"]
                handback = f"/api/live/{quoted}/handback"
                not_taken = (await http.post(handback, json={}, headers=sup_auth)).status_code
                res = await http.post(f"/api/live/{quoted}/takeover", json=await sup.offer(), headers=sup_auth)
                assert res.status_code == 200, res.text
                await sup.answer(res.json())
                await until(lambda: sum(frames_at(np.frombuffer(p, np.int16), 16000, SUPERVISOR_HZ) for p in
                                        caller.heard[-50:]) > 20, 20, "the caller hearing the supervisor")
                codes = {
                    "anonymous": (await http.post(handback, json={})).status_code,
                    "agent": (await http.post(handback, json={}, headers=agent_auth)).status_code,
                    "unknown call": (await http.post("/api/live/nope/handback", json={},
                                                     headers=sup_auth)).status_code,
                    "not taken over": not_taken,
                }
                res = await http.post(handback, json={}, headers=sup_auth)
                assert res.status_code == 200, res.text
                again = (await http.post(handback, json={}, headers=sup_auth)).status_code
                back = len(caller.heard)
                await until(lambda: sup.pc.connectionState in ("closed", "failed"), 30,
                            "the supervisor's connection to close")
                turns = await bot_said(3)
                live = (await http.get(f"/api/live/{quoted}", headers=sup_auth)).json()
                heard_back = list(caller.heard[back:])
                state_after = caller.leg.state
                await caller.hangup()
            finally:
                await caller.close()
                await sup.close()
        return {"call_id": call_id, "asked": asked, "codes": codes, "again": again, "turns": turns,
                "live": live, "heard_back": heard_back, "state_after": state_after}

    out = asyncio.run(run())
    engine = create_engine(db)
    deadline = time.monotonic() + 20
    with engine.connect() as conn:
        while True:  # the record is closed once the server has seen the leg end
            row = conn.execute(select(CallRow).where(CallRow.id == out["call_id"])).one()
            if row.end is not None or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    audit = UserStore(engine).audit_log(call_id=out["call_id"])

    assert out["codes"] == {"anonymous": 401, "agent": 403, "unknown call": 404, "not taken over": 409}
    assert out["again"] == 409  # the bot has it again
    resumed = out["turns"][2]["text"]
    assert resumed.startswith("I'm back."), out["turns"]
    # Its pending question again (another variant of it may be said): what the bot had asked was not forgotten.
    assert resumed != "I'm back." and "how can i help" not in resumed.lower(), (out["asked"], resumed)
    assert out["state_after"] == "answered", "handing back must not hang up on the caller"
    heard = np.frombuffer(b"".join(out["heard_back"]), np.int16)
    assert sum(loud(p) for p in out["heard_back"]) > 25, "the caller should hear the bot again"
    assert frames_at(heard[-16000 * 2:], 16000, SUPERVISOR_HZ) <= 2, "the supervisor still reached the caller"
    assert out["live"]["state"] == "bot" and out["live"]["taken_over_by"] is None
    assert row.end is not None and row.outcome != "taken_over" and row.taken_over_by == "sup"
    assert row.end_reason == "caller_hangup"
    actions = [(r["username"], r["action"]) for r in reversed(audit) if r["action"] != "open_call"]  # oldest first
    assert actions == [("sup", "takeover"), ("sup", "handback")]
