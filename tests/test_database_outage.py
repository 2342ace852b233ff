"""A database locked by another process (SQLite `BEGIN EXCLUSIVE` held by a subprocess until the test lets go):
call records wait in the call store's queue and are all written once the lock goes, without the call waiting;
`voicebot chat` ends with a clear message instead of a traceback."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from voicebot.events import EventBus
from voicebot.storage import CallStore
from voicebot.storage.schema import upgrade

HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()  # held until the test says so
conn.execute("COMMIT")
"""


class Lock:
    """Another process holding the SQLite file exclusively until :meth:`release`."""

    def __init__(self, path: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"

    @property
    def held(self) -> bool:
        return self.proc.poll() is None

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.wait(timeout=30) == 0


def test_a_locked_database_delays_call_records_but_loses_none(tmp_path: Path, caplog) -> None:
    path = tmp_path / "calls.db"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2})  # short busy wait: retries
    upgrade(engine)
    events = EventBus()
    store = CallStore(engine, events)
    start = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    lock = Lock(path)

    async def call() -> int:
        await store.arun("open_call", "call-1", "sip", "+15551230001", "bot")
        bot = await store.arun("add_turn", "call-1", "bot", "Hello, how can I help?", start)
        turn = await store.arun("add_turn", "call-1", "caller", "Where is my order?", start)
        await store.arun("update_turn", bot, extra={"interrupted": True})
        await store.arun("close_call", "call-1", "resolved", "caller_hangup")
        return turn

    with caplog.at_level(logging.WARNING, logger="voicebot.storage.calls"):
        turn = asyncio.run(call())
        assert lock.held  # every write above returned while the database was still locked
        assert turn < 0  # a placeholder id: the turn waits in the queue
        lock.release()
        assert store.flush(timeout=60)
    record = store.get("call-1")
    assert record is not None and record["outcome"] == "resolved"
    assert [(t["speaker"], t["text"]) for t in record["turns"]] == [
        ("bot", "Hello, how can I help?"), ("caller", "Where is my order?")]
    assert record["turns"][0]["extra"].get("interrupted") is True  # the update found its turn
    assert "database unavailable" in caplog.text and "available again" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    store.close()


def test_a_locked_database_delays_the_records_but_not_the_live_events(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    upgrade(engine)
    events = EventBus()
    store = CallStore(engine, events)
    start = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    lock = Lock(path)

    async def call() -> tuple[list[Any], list[dict]]:
        events.bind()
        sub = events.subscribe()
        await store.arun("open_call", "call-3", "sip", "+15551230003", "bot")
        bot = await store.arun("add_turn", "call-3", "bot", "Hello, how can I help?", start)
        await store.arun("update_turn", bot, end=start)
        caller = await store.arun("add_turn", "call-3", "caller", "My card is 4111 1111 1111 1111.", start,
                                  intents=[{"name": "order_status"}])
        during = [await asyncio.wait_for(sub.get(), 5) for _ in range(4)]
        assert lock.held  # every event above went out while the database was locked
        lock.release()
        assert await store.aflush(60)
        # The pipeline still names the caller's turn by its placeholder; the record and the events agree.
        await store.arun("update_turn", caller, extra={"checked": True})
        await store.arun("close_call", "call-3", "resolved", "caller_hangup")
        after = []
        while not after or after[-1]["type"] != "call.ended":
            event = await asyncio.wait_for(sub.get(), 10)
            assert event is not None
            after.append(event)
        return during, after

    during, after = asyncio.run(call())
    assert [e["type"] for e in during] == ["call.started", "turn", "turn.updated", "turn"]
    bot_turn, caller_turn = during[1]["turn"], during[3]["turn"]
    assert (bot_turn["speaker"], bot_turn["id"], bot_turn["seq"]) == ("bot", -1, None)
    assert during[2]["turn_id"] == -1 and during[2]["call_id"] == "call-3"
    assert caller_turn["id"] == -2 and "4111" not in caller_turn["text"]  # redacted as the stored turn is
    # The writes landing later publish nothing again; later updates name the turn as its live event did.
    assert [(e["type"], e.get("turn_id")) for e in after] == [("turn.updated", -2), ("call.ended", None)]
    record = store.get("call-3")
    assert record is not None and [t["speaker"] for t in record["turns"]] == ["bot", "caller"]
    assert record["turns"][1]["extra"]["checked"] is True and record["turns"][1]["text"] == caller_turn["text"]
    store.close()


def test_the_backlog_is_bounded(tmp_path: Path, caplog) -> None:
    path = tmp_path / "calls.db"
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.2})
    upgrade(engine)
    store = CallStore(engine, max_backlog=3, answer_within_s=0.05)
    lock = Lock(path)

    async def flood() -> None:
        await store.arun("open_call", "call-2", "sip", None, None)
        for i in range(6):
            await store.arun("add_turn", "call-2", "caller", f"turn {i}", datetime.now(UTC))

    with caplog.at_level(logging.ERROR, logger="voicebot.storage.calls"):
        asyncio.run(flood())
    assert "dropped" in caplog.text
    lock.release()
    assert store.flush(timeout=60)
    record = store.get("call-2")
    assert record is not None and 1 <= len(record["turns"]) < 6
    store.close()


@pytest.mark.slow
def test_chat_against_a_database_locked_mid_conversation_says_so_without_a_traceback(tmp_path: Path) -> None:
    """The lock comes after the chat has started; the PIN check must write (the attempt is logged), waits out
    the busy timeout and then the chat ends with a message, not a traceback."""
    db = tmp_path / "bot.db"
    cfg = tmp_path / "voicebot.yaml"
    cfg.write_text(f"database:\n  url: sqlite:///{db}\n  seed_demo: true\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    chat = subprocess.Popen(
        [sys.executable, "-m", "voicebot", "chat", "--json", "--caller-id", "+15551230001", "--config", str(cfg)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
    )
    assert chat.stdin is not None and chat.stdout is not None
    chat.stdin.write("where is my order\n")
    chat.stdin.flush()
    assert "confirm who you are" in chat.stdout.readline()  # the chat is up, its contact stored
    lock = Lock(db)
    try:
        out, err = chat.communicate('{"dtmf": "4321#"}\n', timeout=120)
    finally:
        lock.release()
    assert chat.returncode == 1, err
    assert "Traceback" not in err
    assert "is not available (database is locked)" in err and "try again" in err


def test_a_pipeline_turn_during_a_lock_says_the_holding_phrase_then_answers_and_stores_it(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The dialog stage of a call, driven with turn frames (no audio): the PIN check waits for a locked database,
    the caller hears the holding phrase at once, the answer follows when the lock goes, the record keeps all."""
    from demo_db import NOW, demo_copy
    from pipecat.frames.frames import EndFrame
    from pipecat.pipeline.worker import PipelineWorker
    from stage_helpers import SaidRecorder, ThreadPool, run_pipeline

    from dialogs.engine import DialogEngine
    from telephony.keypad import KeypadInputFrame
    from voicebot.config import CallConfig
    from voicebot.pipeline.call import CallContext
    from voicebot.pipeline.dialog import HOLDING_PHRASE, DialogStage
    from voicebot.pipeline.frames import CallerTurnFrame, GreetFrame

    url = demo_copy(tmp_path, tmp_path_factory)
    upgrade(url)
    engine = DialogEngine.build(database_url=url, seed_demo=False, clock=lambda: NOW, seed=3)
    store = CallStore(engine.database.engine)

    session = engine.new_call(channel="sip", caller_id="+15551230001", call_id="call-locked")
    call = CallContext("call-locked", "sip", "+15551230001", session, store, ThreadPool())  # type: ignore[arg-type]
    ear = SaidRecorder(timeout_s=60)
    stage = DialogStage(call, CallConfig(hold_phrase_after_s=0.5))
    lock: list[Lock] = []

    async def drive(task: PipelineWorker) -> None:
        await task.queue_frame(GreetFrame())
        await ear.until(1)
        now = datetime.now(UTC)
        await task.queue_frame(CallerTurnFrame(text="Where is my order?", start=now, end=now))
        assert "confirm who you are" in (await ear.until(2)).text
        lock.append(await asyncio.to_thread(Lock, Path(url.removeprefix("sqlite:///"))))
        await task.queue_frame(KeypadInputFrame(keys="4321", terminated=True))
        holding = await ear.until(3)
        assert holding.text == HOLDING_PHRASE and holding.kind == "holding"
        assert lock[0].held  # said while the database is still locked
        await asyncio.to_thread(lock[0].release)
        assert "verified" in (await ear.until(4)).text
        await call.finish("caller_hangup")
        await task.queue_frame(EndFrame())

    try:
        asyncio.run(run_pipeline([stage, ear], drive))
    finally:
        if lock and lock[0].held:
            lock[0].release()
    assert store.flush(timeout=60)
    record = store.get("call-locked")
    assert record is not None and record["end"] is not None
    texts = [(t["speaker"], t["text"]) for t in record["turns"]]
    assert ("caller", "Where is my order?") in texts and ("caller", "[keypad: ****]") in texts
    assert ("bot", HOLDING_PHRASE) in texts
    assert any(speaker == "bot" and "verified" in text for speaker, text in texts)
    store.close()
    engine.database.dispose()
