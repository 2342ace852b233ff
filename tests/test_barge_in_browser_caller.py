"""Barge-in on a browser (WebRTC) caller: an aiortc caller on ``/api/offer`` talks with the bot of `voicebot serve`
(no agent queue); a supervisor (an aiortc peer whose microphone is a 1 kHz tone) takes the call over, as on a phone
call. The bot stops (it answers nothing the caller says), the caller hears the supervisor, the supervisor hears the
caller (a 400 Hz tone), a listener hears both; the record says who took over. Handing back gives the caller to the
bot again (it says it is back and asks its pending question), without hanging up; a second take-over ends when the
supervisor hangs up (the caller's connection closes) or when the caller leaves (the supervisor's closes). The
call's maximum duration counts from its start, a hand-back does not restart it."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import numpy as np
import pytest
from auth_helpers import add_user, login
from call_models import CALL_FLOW_MODELS
from sqlalchemy import create_engine, select
from test_listen_bridge import BrowserCaller, Phone, loud, until
from test_transfer_live import frames_at, tone

from audio.pcm import SAMPLE_RATE
from audio.speech import espeak_ng
from voicebot.client.local_server import ServerProcess
from voicebot.storage.models import CallRow
from voicebot.users import UserStore

pytestmark = pytest.mark.slow

SUPERVISOR_HZ, CALLER_HZ, LISTENER_HZ = 1000, 400, 2500


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server (browser callers only, no agent queue) with a supervisor and an agent."""
    config = {"models": CALL_FLOW_MODELS, "call": {"greeting": "Hello, this is the Acme assistant. How can I help?"}}
    with ServerProcess(tmp_path_factory.mktemp("barge_in_browser_caller") / "server", config,
                       start_timeout_s=300) as server:
        add_user(server.config["database"]["url"], "sup", "supervisor")
        add_user(server.config["database"]["url"], "ann", "agent")
        yield server


def pcm(text: str) -> bytes:
    speech, _ = espeak_ng(text, rate=150, sample_rate=SAMPLE_RATE)
    return (speech * 20000).astype(np.int16).tobytes()


def hz_frames(frames: list[bytes], hz: float) -> int:
    return frames_at(np.frombuffer(b"".join(frames), np.int16), SAMPLE_RATE, hz)


def closed_row(db: str, call_id: str) -> Any:
    """The call's record once the server has closed it (or as it is after 20 s)."""
    engine = create_engine(db)
    deadline = time.monotonic() + 20
    with engine.connect() as conn:
        while True:
            row = conn.execute(select(CallRow).where(CallRow.id == call_id)).one()
            if row.end is not None or time.monotonic() > deadline:
                return row
            time.sleep(0.1)


class Call:
    """The test's view of one browser call: its turns through the API, the caller's connection."""

    def __init__(self, http: httpx.AsyncClient, auth: dict[str, str], caller: BrowserCaller, call_id: str):
        self.http, self.auth, self.caller, self.call_id = http, auth, caller, call_id
        self.quoted = urllib.parse.quote(call_id, safe="")  # browser call ids hold a '#'

    async def bot_turns(self) -> list[dict[str, Any]]:
        res = await self.http.get(f"/api/calls/{self.quoted}", headers=self.auth)
        return [t for t in res.json().get("turns", []) if t["speaker"] == "bot"] if res.is_success else []

    async def bot_said(self, n: int) -> list[dict[str, Any]]:
        """The bot's turns once its ``n``-th has been said in full."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            turns = await self.bot_turns()
            if len(turns) >= n and turns[n - 1]["end"] is not None:
                return turns
            await asyncio.sleep(0.1)
        raise AssertionError(f"the bot did not say its turn {n}")

    async def take_over(self, sup: Phone) -> str:
        res = await self.http.post(f"/api/live/{self.quoted}/takeover", json=await sup.offer(), headers=self.auth)
        assert res.status_code == 200, res.text
        assert res.json()["mode"] == "takeover"
        await sup.answer(res.json())
        return str(res.json()["pc_id"])

    def caller_gone(self) -> bool:
        reader = self.caller.reader
        return self.caller.pc.connectionState in ("closed", "failed") or (reader is not None and reader.done())


def test_a_supervisor_takes_a_browser_caller_over_hands_back_and_hangs_up(served: ServerProcess) -> None:
    server = served
    db = server.config["database"]["url"]
    sup_auth, agent_auth = login(server.url, "sup"), login(server.url, "ann")

    async def run() -> dict[str, Any]:
        caller, sup, listener, sup2 = BrowserCaller(), Phone(SUPERVISOR_HZ), Phone(LISTENER_HZ), Phone(SUPERVISOR_HZ)
        out: dict[str, Any] = {}
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            try:
                call = Call(http, sup_auth, caller, await caller.dial(server.url))
                out["call_id"] = call.call_id
                await call.bot_said(1)
                await caller.say(pcm("Where is my order?"))
                out["asked"] = (await call.bot_said(2))[1]["text"]
                res = await http.post(f"/api/live/{call.quoted}/listen", json=await listener.offer(), headers=sup_auth)
                assert res.status_code == 200, res.text
                await listener.answer(res.json())
                url = f"/api/live/{call.quoted}/takeover"
                out["codes"] = {
                    "anonymous": (await http.post(url, json=await Phone(SUPERVISOR_HZ).offer())).status_code,
                    "agent": (await http.post(url, json=await Phone(SUPERVISOR_HZ).offer(),
                                              headers=agent_auth)).status_code,
                }
                await call.take_over(sup)
                out["again"] = (await http.post(url, json=await Phone(SUPERVISOR_HZ).offer(),
                                                headers=sup_auth)).status_code
                out["live"] = (await http.get(f"/api/live/{call.quoted}", headers=sup_auth)).json()
                # From the moment the caller hears the supervisor (the bot's last words, cut at the take-over, may
                # still be in flight for a few frames), they hear nobody else.
                before = len(caller.heard)
                await until(lambda: hz_frames(caller.heard[before:], SUPERVISOR_HZ) > 0, 20,
                            "the caller hearing the supervisor")
                taken = next(i for i in range(before, len(caller.heard))
                             if hz_frames(caller.heard[i:i + 1], SUPERVISOR_HZ))
                # The caller asks the bot something (it would answer), then says a steady tone, louder than the
                # supervisor's (a listener hears the mix: each 20 ms is dominated by one of them).
                await caller.say(pcm("What are your opening hours?"))
                await caller.say(tone(CALLER_HZ, 2.0, level=16000).tobytes())
                await until(lambda: sup.tone_frames(CALLER_HZ) > 40, 20, "the supervisor hearing the caller")
                await until(lambda: listener.tone_frames(CALLER_HZ) > 20 and listener.tone_frames(SUPERVISOR_HZ) > 20,
                            20, "the listener hearing the caller and the supervisor")
                await asyncio.sleep(3.0)  # time in which the bot would have answered the question
                out["heard_taken"] = list(caller.heard[taken:])
                out["bot_turns_taken"] = len(await call.bot_turns())
                out["sup_echo"] = sup.tone_frames(SUPERVISOR_HZ)

                # Handed back: the bot has the caller again and asks its pending question.
                res = await http.post(f"/api/live/{call.quoted}/handback", json={}, headers=sup_auth)
                assert res.status_code == 200, res.text
                back = len(caller.heard)
                await until(lambda: sup.pc.connectionState in ("closed", "failed"), 30,
                            "the supervisor's connection to close")
                out["resumed"] = (await call.bot_said(3))[2]["text"]
                out["heard_back"] = list(caller.heard[back:])
                out["live_back"] = (await http.get(f"/api/live/{call.quoted}", headers=sup_auth)).json()
                out["caller_state_back"] = caller.pc.connectionState

                # Taken over again; the supervisor hangs up: the caller's connection closes.
                pc_id = await call.take_over(sup2)
                mark = len(caller.heard)
                await until(lambda: hz_frames(caller.heard[mark:], SUPERVISOR_HZ) > 50, 30,
                            "the caller hearing the supervisor again")
                res = await http.delete(f"/api/live/{call.quoted}/listen/{pc_id}", headers=sup_auth)
                assert res.status_code == 200, res.text
                await until(call.caller_gone, 30, "the caller's connection to close")
            finally:
                for peer in (caller, sup, listener, sup2):
                    await peer.close()
        return out

    out = asyncio.run(run())
    row = closed_row(db, out["call_id"])
    audit = UserStore(create_engine(db)).audit_log(call_id=out["call_id"])

    assert out["codes"] == {"anonymous": 401, "agent": 403}
    assert out["again"] == 409  # taken over already
    assert out["live"]["state"] == "supervisor" and out["live"]["taken_over_by"] == "sup"
    heard = out["heard_taken"]
    assert hz_frames(heard, SUPERVISOR_HZ) > 100, "the caller should hear the supervisor"
    assert sum(loud(p) for p in heard) - hz_frames(heard, SUPERVISOR_HZ) <= 5, \
        "the caller heard something besides the supervisor"
    assert out["sup_echo"] <= 2, "the supervisor's own voice came back to them"
    assert out["bot_turns_taken"] == 2, "the bot answered while the supervisor had the call"
    assert out["resumed"].startswith("I'm back.") and out["resumed"] != "I'm back.", (out["asked"], out["resumed"])
    assert "how can i help" not in out["resumed"].lower(), "the bot forgot its pending question"
    assert out["caller_state_back"] == "connected", "handing back must not hang up on the caller"
    assert sum(loud(p) for p in out["heard_back"]) > 25, "the caller should hear the bot again"
    assert hz_frames(out["heard_back"][-100:], SUPERVISOR_HZ) <= 2, "the supervisor still reached the caller"
    assert out["live_back"]["state"] == "bot" and out["live_back"]["taken_over_by"] is None
    assert row.outcome == "taken_over" and row.taken_over_by == "sup" and row.taken_over_at is not None
    assert row.end_reason == "supervisor_hangup"
    actions = [r["action"] for r in reversed(audit) if r["action"] not in ("open_call", "listen")]  # oldest first
    assert actions == ["takeover", "handback", "takeover"]


def test_a_browser_caller_leaving_ends_the_supervisors_connection(served: ServerProcess) -> None:
    server = served
    db = server.config["database"]["url"]
    sup_auth = login(server.url, "sup")

    async def run() -> str:
        caller, sup = BrowserCaller(), Phone(SUPERVISOR_HZ)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            try:
                call = Call(http, sup_auth, caller, await caller.dial(server.url))
                await call.bot_said(1)
                await call.take_over(sup)
                await caller.say(tone(CALLER_HZ, 1.0, level=6000).tobytes())
                await until(lambda: sup.tone_frames(CALLER_HZ) > 20, 20, "the supervisor hearing the caller")
                await caller.hangup()
                await until(lambda: sup.pc.connectionState in ("closed", "failed"), 30,
                            "the supervisor's connection to close")
            finally:
                await caller.close()
                await sup.close()
        return call.call_id

    row = closed_row(db, asyncio.run(run()))
    assert row.outcome == "taken_over" and row.taken_over_by == "sup"
    assert row.end_reason == "caller_hangup"


def test_the_maximum_duration_counts_from_the_calls_start_after_a_hand_back(tmp_path: Any) -> None:
    """``call.max_duration_s`` 25, two calls at once. A supervisor has the first from about 4 s to 14 s and hands it
    back: the bot says it is back, then its time-limit goodbye about 25 s after the call started (not 25 s after the
    hand-back) and hangs up. The second is handed back at about 30 s, when its time is up: the bot says only the
    goodbye."""
    limit_s = 25.0
    config = {"models": CALL_FLOW_MODELS,
              "call": {"greeting": "Hello, this is the Acme assistant. How can I help?", "max_duration_s": limit_s,
                       "silence_prompt_s": 60, "silence_hangup_s": 60}}

    async def one_call(server: ServerProcess, hold_s: float) -> dict[str, Any]:
        sup_auth = login(server.url, "sup")
        caller, sup = BrowserCaller(), Phone(SUPERVISOR_HZ)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            try:
                call = Call(http, sup_auth, caller, await caller.dial(server.url))
                await call.bot_said(1)
                await call.take_over(sup)
                await asyncio.sleep(hold_s)  # the supervisor talks with the caller for a while
                res = await http.post(f"/api/live/{call.quoted}/handback", json={}, headers=sup_auth)
                assert res.status_code == 200, res.text
                await until(call.caller_gone, 3 * limit_s, "the bot to end the call at its time limit")
                record = (await http.get(f"/api/calls/{call.quoted}", headers=sup_auth)).json()
            finally:
                await caller.close()
                await sup.close()
        return record | {"call_id": call.call_id}

    async def both(server: ServerProcess) -> list[dict[str, Any]]:
        return list(await asyncio.gather(one_call(server, 10.0), one_call(server, limit_s + 1)))

    with ServerProcess(tmp_path / "server", config, start_timeout_s=300) as server:
        add_user(server.config["database"]["url"], "sup", "supervisor")
        records = asyncio.run(both(server))
        rows = [closed_row(server.config["database"]["url"], record["call_id"]) for record in records]

    said = []
    for record, row in zip(records, rows, strict=True):
        bot = [t for t in record["turns"] if t["speaker"] == "bot"]
        said.append([t["text"].split(".")[0] for t in bot[1:]])
        goodbye_at = (datetime.fromisoformat(bot[-1]["start"]).replace(tzinfo=None)
                      - row.start.replace(tzinfo=None)).total_seconds()
        assert row.end_reason == "bot_hangup" and row.taken_over_by == "sup"
        if len(said) == 1:
            assert limit_s - 1 <= goodbye_at <= limit_s + 5, f"the goodbye came {goodbye_at:.1f} s after the start"
    assert said == [["I'm back", "We have reached the time limit for this call"],
                    ["We have reached the time limit for this call"]]
