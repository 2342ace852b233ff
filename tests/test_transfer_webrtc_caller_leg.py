"""The browser caller's leg in the agent queue, without a network: TransferService with the real ACD, LiveQueue,
bridge, call store (SQLite file) and event bus; the caller is a :class:`BrowserLeg` as ``voicebot serve`` makes
it (its pipeline stages replaced by a recorder of what it plays), the agent another one standing in for the
agent page's phone. Speech is a stand-in (tones by frequency: whisper 2500 Hz, other prompts 700 Hz, caller
400 Hz, agent 3000 Hz); the speech recogniser a stand-in naming the side it hears.
The end-to-end test with real peers is ``test_transfer_webrtc_caller.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from handoff_helpers import customer, handoff_packet, intent
from sqlalchemy import create_engine
from test_transfer_live import AGENT_HZ, CALLER_HZ, OTHER_HZ, WHISPER_HZ, frames_at, tone

from voicebot.config import Settings
from voicebot.events import EventBus
from voicebot.pipeline.call import CallContext
from voicebot.server.caller_leg import BrowserLeg, key_of_message
from voicebot.storage import CallStore
from voicebot.storage.schema import upgrade
from voicebot.transfer import TransferService

CALL = "SmallWebRTCConnection#0-abc"
PACKET = handoff_packet("Caller Jane Doe, verified. Wants a refund.", customer=customer("Jane Doe", True),
                        intents_pending=(intent("refund"),))


class Heard:
    """Stands in for the stage that plays a leg's audio to its browser: keeps what it was given."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def play(self, pcm: bytes) -> None:
        self.chunks.append(pcm)

    def samples(self) -> np.ndarray:
        return np.frombuffer(b"".join(self.chunks), np.int16)


class Recogniser:
    """Stands in for the shared Whisper model: names the voice by its tone."""

    async def run(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def transcribe(self, audio: bytes) -> str:
        x = np.frombuffer(audio, np.int16)
        if frames_at(x, 16000, CALLER_HZ) > 10:
            return "the caller talks"
        if frames_at(x, 16000, AGENT_HZ) > 10:
            return "the agent talks"
        return ""


async def speak(text: str, *_: Any) -> bytes:
    return tone(OTHER_HZ, 0.3).tobytes()


async def whisper(text: str) -> bytes:
    return tone(WHISPER_HZ, 0.405).tobytes()  # not whole 20 ms frames: its end must still be "played out"


def leg(call_id: str, caller: str) -> tuple[BrowserLeg, Heard]:
    out = Heard()
    browser = BrowserLeg(call_id, caller)
    browser._out = out  # type: ignore[assignment]
    return browser, out


async def talk(browser: BrowserLeg, hz: float, seconds: float) -> None:
    """Speak into the leg in real time, 20 ms at a time (as the input stage hands it on)."""
    pcm = tone(hz, seconds).tobytes()
    for i in range(0, len(pcm), 640):
        browser._audio_in(pcm[i : i + 640])
        await asyncio.sleep(0.02)


def service_for(tmp_path: Path, agent: dict[str, Any], **queue: Any) -> tuple[TransferService, CallStore, list]:
    settings = Settings(agents=[agent], queues=[{"name": "general", "agent_timeout": 10, "max_wait": 60, **queue}])
    engine = create_engine(f"sqlite:///{tmp_path / 'voicebot.db'}")
    upgrade(engine)
    bus = EventBus()
    bus.bind()
    events: list[dict[str, Any]] = []
    bus.add_listener(events.append)
    store = CallStore(engine, bus)
    service = TransferService(settings, shared=Recogniser(), engine=engine, store=store, events=bus)  # type: ignore[arg-type]
    service.speak = speak  # type: ignore[method-assign]
    service.speak_whisper = whisper  # type: ignore[method-assign]
    return service, store, events


async def until(condition: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def test_browser_caller_hears_the_agent_not_the_whisper_and_the_record_gets_both_sides(tmp_path: Path) -> None:
    async def main() -> tuple[Any, ...]:
        service, store, events = service_for(
            tmp_path, {"id": "alice", "name": "Alice", "contact": "webrtc", "logged_in": True})
        await service.start()
        assert service.live is not None
        agent, agent_heard = leg("agent-leg", "alice")

        async def ring(agent_id: str, call_id: str, timeout: float) -> BrowserLeg:
            agent.take_over()
            return agent

        service.live.web_ring = ring
        store.open_call(CALL, "webrtc", "5550100")
        ctx = CallContext(CALL, "webrtc", "5550100", session=None, store=store, shared=None)  # type: ignore[arg-type]
        ctx._opened, ctx.outcome, ctx.end_reason = True, "handoff", "handoff"
        caller, caller_heard = leg(CALL, "5550100")
        released = asyncio.Event()
        handed = asyncio.ensure_future(service.handoff(caller, ctx, PACKET, caller_ready=released))
        # The bot says its last sentence meanwhile; then the pipeline lets go of the caller.
        await until(lambda: agent_heard.chunks)
        caller.take_over()
        released.set()
        await until(lambda: any(e["type"] == "call.state" and e["state"] == "agent" for e in events))
        await talk(caller, CALLER_HZ, 1.0)
        await talk(agent, AGENT_HZ, 1.0)
        await agent.hangup()  # what each side said last is transcribed when the call is over
        result = await asyncio.wait_for(handed, 30)
        assert await store.aflush(30)
        record = store.get(CALL)
        transfer = service.records.of_call(CALL)
        await service.close()
        return result, record, transfer, events, caller, caller_heard.samples(), agent_heard.samples()

    result, record, transfer, events, caller, caller_heard, agent_heard = asyncio.run(main())
    assert result.outcome == "answered" and result.agent_id == "alice"
    assert caller.state == "ended", "the caller's leg ends with the agent's"
    # Whisper only to the agent; the bridge carries both ways.
    assert frames_at(agent_heard, 16000, WHISPER_HZ) >= 10
    assert frames_at(caller_heard, 16000, WHISPER_HZ) == 0
    assert frames_at(caller_heard, 16000, AGENT_HZ) >= 30
    assert frames_at(agent_heard, 16000, CALLER_HZ) >= 30
    # The record: closed by the queue with the outcome, the agent, both sides' bridged turns.
    assert record["outcome"] == "handoff" and record["end"] is not None and record["agent_id"] == "alice"
    bridged = [(t["speaker"], t["text"]) for t in record["turns"] if t.get("extra", {}).get("kind") == "bridged"]
    assert ("caller", "the caller talks") in bridged and ("agent", "the agent talks") in bridged, record["turns"]
    assert [t["text"] for t in transfer["transcript"]] == [text for _, text in bridged]
    # Events: hand-off, queued, with the agent, queue snapshots, turns before the call's end.
    kinds = [e["type"] for e in events]
    handoff = next(e for e in events if e["type"] == "handoff")
    assert handoff["call_id"] == CALL and handoff["packet"] == PACKET.to_dict()  # the JSON as before
    states = [(e["state"], e.get("queue"), e.get("agent_id")) for e in events if e["type"] == "call.state"]
    assert states == [("queued", "general", None), ("agent", "general", "alice")]
    snapshots = [e for e in events if e["type"] == "queue"]
    assert any(a["state"] == "busy" for s in snapshots for a in s["agents"])
    assert snapshots[-1]["agents"][0]["state"] != "busy" and not snapshots[-1]["queues"][0]["waiting"]
    ended = kinds.index("call.ended")
    assert all(i < ended for i, e in enumerate(events) if e["type"] == "turn"), "turns arrive before the end"
    assert events[ended]["outcome"] == "handoff"


def test_browser_caller_leaving_while_queued_is_abandoned_with_the_wait(tmp_path: Path) -> None:
    async def main() -> tuple[Any, ...]:
        service, store, events = service_for(
            tmp_path, {"id": "alice", "name": "Alice", "contact": "webrtc"}, join_empty=True)
        await service.start()
        store.open_call(CALL, "webrtc", "5550100")
        ctx = CallContext(CALL, "webrtc", "5550100", session=None, store=store, shared=None)  # type: ignore[arg-type]
        ctx._opened, ctx.outcome, ctx.end_reason = True, "handoff", "handoff"
        caller, heard = leg(CALL, "5550100")
        caller.take_over()
        released = asyncio.Event()
        released.set()
        handed = asyncio.ensure_future(service.handoff(caller, ctx, PACKET, caller_ready=released))
        await until(lambda: len(heard.chunks) >= 50)  # the announcement and a second of hold music
        caller.peer_gone()  # the page closed
        result = await asyncio.wait_for(handed, 10)
        assert await store.aflush(30)  # a write the database is slow to take goes on in the background
        record = store.get(CALL)
        await service.close()
        return result, record, events, heard.samples()

    result, record, events, heard = asyncio.run(main())
    assert result.outcome == "abandoned" and result.wait_s >= 1.0
    assert frames_at(heard, 16000, OTHER_HZ) >= 10, "the caller heard the queue's announcement"
    assert record["outcome"] == "abandoned" and record["end"] is not None
    assert [e["state"] for e in events if e["type"] == "call.state"] == ["queued"]
    snapshots = [e for e in events if e["type"] == "queue"]
    assert any(w["call_id"] == CALL for s in snapshots for w in s["queues"][0]["waiting"]), "a snapshot with the caller"
    assert not snapshots[-1]["queues"][0]["waiting"] and snapshots[-1]["queues"][0]["stats"]["abandoned"] == 1
    assert next(e for e in events if e["type"] == "call.ended")["outcome"] == "abandoned"


def test_keypad_messages_of_the_caller_page() -> None:
    assert key_of_message({"type": "dtmf", "key": "5"}) == "5"
    assert key_of_message({"type": "dtmf", "key": "#"}) == "#"
    for bad in ({"type": "dtmf", "key": "55"}, {"type": "dtmf", "key": "a"}, {"type": "dtmf"}, {"key": "1"},
                "dtmf 1", None):
        assert key_of_message(bad) is None
