"""Call recording with consent, piece by piece: the stereo writer (time alignment with an injected clock, 0600,
the length bound), the decline words and key in the dialog, the monitor's sinks, the recording's rows in a real
SQLite file, the playback endpoint's access control and Range answers, the retention purge and the erasure with
their files. A real SIP call end to end: tests/test_recording_sip.py."""

from __future__ import annotations

import asyncio
import os
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from audio.pcm import FRAME_BYTES, SAMPLE_RATE
from dialogs.engine import DialogEngine, Turn
from dialogs.manager.consent import RecordingConsent
from voicebot.config import Settings
from voicebot.monitor import Monitors
from voicebot.recording import CallRecording, StereoRecorder, call_recording
from voicebot.server.recordings import router
from voicebot.storage import CallStore
from voicebot.storage.models import CallRow, RecordingRow
from voicebot.storage.retention import erase_calls, export_calls, purge_all, purge_recordings
from voicebot.storage.schema import upgrade
from voicebot.users import UserStore


def tone(ms: int, hz: float = 440.0, amplitude: float = 8000.0) -> bytes:
    n = SAMPLE_RATE * ms // 1000
    return (np.sin(2 * np.pi * hz * np.arange(n) / SAMPLE_RATE) * amplitude).astype("<i2").tobytes()


def read_stereo(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, SAMPLE_RATE)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2).astype(float)


def loud(x: np.ndarray) -> float:
    return float(np.abs(x).mean()) if len(x) else 0.0


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def seconds(s: float) -> int:
    return int(s * SAMPLE_RATE)


# --- the writer -------------------------------------------------------------------------------------------------
def test_both_sides_are_placed_where_they_were_heard(tmp_path: Path) -> None:
    clock = Clock()
    rec = StereoRecorder(tmp_path / "r" / "call.wav", max_s=60, clock=clock)
    rec.start()
    start = clock.t
    for i in range(50):  # the caller speaks for the first second, 20 ms at a time
        clock.t = start + (i + 1) * 0.02
        rec.push("caller", tone(20))
    clock.t = start + 2.0
    rec.push("bot", tone(300, 880))  # the bot's 300 ms arrive at once (a burst), heard up to 2.0 s
    clock.t = start + 2.5
    rec.push("agent", tone(200, 660))  # the agent, on the same side as the bot
    clock.t = start + 3.0
    done = rec.stop()
    assert oct(os.stat(done.path).st_mode & 0o777) == "0o600"
    assert os.stat(done.path.parent).st_mode & 0o077 == 0
    audio = read_stereo(done.path)
    assert done.duration_s == pytest.approx(3.0, abs=0.03) and len(audio) == seconds(done.duration_s)
    left, right = audio[:, 0], audio[:, 1]
    assert loud(left[: seconds(1.0)]) > 4000 and loud(left[seconds(1.02):]) == 0  # the caller: left, 0-1 s
    assert loud(right[seconds(1.7): seconds(2.0)]) > 4000  # the bot's burst: contiguous, ending when heard
    assert loud(right[: seconds(1.68)]) == 0 and loud(right[seconds(2.02): seconds(2.28)]) == 0
    assert loud(right[seconds(2.3): seconds(2.5)]) > 4000  # the agent: right as well
    assert loud(left[seconds(1.7):]) == 0  # nothing of the bot or the agent on the caller's side


def test_a_source_that_paused_starts_again_where_it_is_heard(tmp_path: Path) -> None:
    clock = Clock()
    rec = StereoRecorder(tmp_path / "call.wav", max_s=60, clock=clock)
    rec.start()
    start = clock.t
    clock.t = start + 0.5
    rec.push("caller", tone(500))  # 0.0-0.5
    clock.t = start + 2.0
    rec.push("caller", tone(500))  # 1.5-2.0, not right after the first half second
    clock.t = start + 2.5
    left = read_stereo(rec.stop().path)[:, 0]
    assert loud(left[: seconds(0.5)]) > 4000 and loud(left[seconds(0.52): seconds(1.48)]) == 0
    assert loud(left[seconds(1.5): seconds(2.0)]) > 4000


def test_the_file_never_grows_past_the_calls_maximum_length(tmp_path: Path) -> None:
    clock = Clock()
    rec = StereoRecorder(tmp_path / "call.wav", max_s=1.0, clock=clock)
    rec.start()
    start = clock.t
    for i in range(150):  # 3 s of caller into a recording of at most 1 s
        clock.t = start + (i + 1) * 0.02
        rec.push("caller", tone(20))
    done = rec.stop()
    assert done.duration_s == 1.0 and len(read_stereo(done.path)) == SAMPLE_RATE


def test_a_discarded_recording_leaves_no_file_and_takes_nothing_more(tmp_path: Path) -> None:
    rec = StereoRecorder(tmp_path / "call.wav", max_s=60)
    rec.start()
    rec.push("caller", tone(100))
    assert rec.path.exists()
    rec.discard()
    rec.push("caller", tone(100))  # after the decline: ignored, nothing recreated
    assert not rec.path.exists() and list(tmp_path.iterdir()) == []


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "call.wav").write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        StereoRecorder(tmp_path / "call.wav", max_s=60).start()
    assert (tmp_path / "call.wav").read_bytes() == b"someone else's"


# --- the monitor's sinks ------------------------------------------------------------------------------------------
def test_a_sink_gets_every_source_until_removed() -> None:
    monitors, got = Monitors(), []

    class Sink:
        def push(self, source: str, pcm: bytes) -> None:
            got.append((source, len(pcm)))

    sink = Sink()
    assert not monitors.listening("c1")
    monitors.add_sink("c1", sink)
    assert monitors.listening("c1")  # the taps resample for a recorder too
    monitors.feed("c1", "caller", bytes(FRAME_BYTES))
    monitors.feed("c1", "agent", bytes(FRAME_BYTES))
    monitors.feed("c2", "caller", bytes(FRAME_BYTES))
    monitors.remove_sink("c1", sink)
    monitors.feed("c1", "bot", bytes(FRAME_BYTES))
    assert got == [("caller", FRAME_BYTES), ("agent", FRAME_BYTES)] and not monitors.listening("c1")


# --- consent in the dialog ---------------------------------------------------------------------------------------
def test_decline_words_and_key() -> None:
    consent = RecordingConsent()
    for said in ("No recording, please.", "please don't record this call", "I'd rather not be recorded",
                 "STOP RECORDING"):
        assert consent.declines(said, None), said
    for said in ("I want to record a return", "no", "recording of my order", ""):
        assert not consent.declines(said, None), said
    assert consent.declines("", "9") and consent.declines("", "9#")
    assert not consent.declines("", "49") and not consent.declines("", "0")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> DialogEngine:
    settings = Settings(database={"url": f"sqlite:///{tmp_path_factory.mktemp('db') / 'd.db'}"},
                        recording={"enabled": True}, dialog={"seed": 1})
    return DialogEngine.from_settings(settings)


def test_the_greeting_announces_the_recording_and_a_decline_asks_the_pending_question_again(
        engine: DialogEngine) -> None:
    session = engine.new_call(channel="sip")
    greeting = session.start().text
    assert "This call may be recorded; say 'no recording' or press 9" in greeting
    assert greeting.rstrip().endswith("?")  # the greeting's question stays last
    asked = session.handle(Turn(text="where is my order")).text
    assert asked.endswith("What is the phone number on your account?") and "record" not in asked
    declined = session.handle(Turn(text="No recording, please."))
    assert declined.recording_declined and declined.action == "continue"
    assert declined.text == "Understood, this call is not recorded. What is the phone number on your account?"
    assert "recording declined" in declined.trace["rule"]
    again = session.handle(Turn(text="no recording"))  # declined once: from now on an ordinary turn
    assert not again.recording_declined


def test_key_9_declines_and_a_chat_hears_no_announcement(engine: DialogEngine) -> None:
    session = engine.new_call(channel="webrtc")
    session.start()
    reply = session.handle(Turn(dtmf="9"))
    assert reply.recording_declined and reply.text.startswith("Understood, this call is not recorded.")
    chat = engine.new_call(channel="chat")
    assert "record" not in chat.start().text
    assert not chat.handle(Turn(text="no recording")).recording_declined  # nothing is recorded to decline


def test_recording_off_means_no_announcement_and_no_recorder(tmp_path: Path) -> None:
    settings = Settings(database={"url": f"sqlite:///{tmp_path / 'd.db'}"})
    assert not settings.recording.enabled
    engine = DialogEngine.from_settings(settings)
    session = engine.new_call(channel="sip")
    assert "record" not in session.start().text
    assert not session.handle(Turn(dtmf="9")).recording_declined
    assert call_recording(settings, CallStore(create_engine("sqlite://")), "c1") is None


def test_key_0_cannot_decline() -> None:
    with pytest.raises(ValueError, match="0 asks for an agent"):
        Settings(recording={"decline_key": "0"})


# --- rows, retention, erasure -------------------------------------------------------------------------------------
@pytest.fixture()
def store(tmp_path: Path) -> CallStore:
    url = f"sqlite:///{tmp_path / 'voicebot.db'}"
    upgrade(url)
    return CallStore(create_engine(url))


def recorded_call(store: CallStore, tmp_path: Path, call_id: str, caller: str = "+15550001111",
                  days_ago: float = 0) -> Path:
    settings = Settings(recording={"enabled": True, "folder": str(tmp_path / "recordings")})
    store.open_call(call_id, "sip", caller)
    recording = call_recording(settings, store, call_id)
    assert isinstance(recording, CallRecording)
    monitors = recording.monitors = Monitors()

    async def run() -> None:
        await recording.start()
        monitors.feed(call_id, "caller", tone(200))
        await recording.finish()
        await store.aflush()

    asyncio.run(run())
    store.close_call(call_id, "resolved", "caller_hangup")
    if days_ago:
        then = datetime.now(UTC) - timedelta(days=days_ago)
        with Session(store.engine) as s, s.begin():
            s.execute(update(CallRow).where(CallRow.id == call_id).values(start=then, end=then))
            s.execute(update(RecordingRow).where(RecordingRow.call_id == call_id).values(started_at=then))
    return recording.recorder.path


def test_the_call_record_says_whether_it_was_recorded_or_declined(store: CallStore, tmp_path: Path) -> None:
    path = recorded_call(store, tmp_path, "rec-1")
    record = store.get("rec-1")
    assert record is not None and record["recording"]["available"] and not record["recording"]["declined"]
    assert record["recording"]["duration_s"] > 0 and path.is_file()
    store.open_call("rec-2", "sip", "+15550002222")
    recording = call_recording(Settings(recording={"enabled": True, "folder": str(tmp_path / "recordings")}),
                               store, "rec-2")
    assert recording is not None
    recording.monitors = Monitors()

    async def decline() -> None:
        await recording.start()
        assert recording.recorder.path.exists()
        await recording.decline()
        await recording.finish()  # the end of the call after a decline writes nothing
        await store.aflush()

    asyncio.run(decline())
    assert not recording.recorder.path.exists()
    record = store.get("rec-2")
    assert record is not None and record["recording"] == {"available": False, "duration_s": None, "declined": True, "interrupted": False, "start": None}
    row = store.recording("rec-2")
    assert row is not None and row.declined_at is not None and row.path is None
    store.open_call("rec-3", "sip", None)
    plain = store.get("rec-3")
    assert plain is not None and plain["recording"] == {"available": False, "duration_s": None, "declined": False, "interrupted": False, "start": None}


def test_retention_deletes_old_recordings_with_their_files(store: CallStore, tmp_path: Path) -> None:
    old = recorded_call(store, tmp_path, "old-1", days_ago=40)
    new = recorded_call(store, tmp_path, "new-1")
    assert purge_recordings(store.engine, datetime.now(UTC) - timedelta(days=30)) == 1
    assert not old.exists() and new.exists()
    assert store.recording("old-1") is None and store.recording("new-1") is not None
    # The call purge (memory.contact_retention_days) takes the recordings with the rest of the call's content.
    older = recorded_call(store, tmp_path, "older-1", days_ago=400)
    database = SimpleNamespace(engine=store.engine, session=_dialog_session(store))
    purge_all(database, 365)
    assert not older.exists() and store.recording("older-1") is None and new.exists()


def _dialog_session(store: CallStore):  # type: ignore[no-untyped-def]
    from dialogs.db.engine import Database

    database = Database(str(store.engine.url))
    return database.session


def test_export_names_the_file_and_erasure_deletes_it(store: CallStore, tmp_path: Path) -> None:
    path = recorded_call(store, tmp_path, "jane-1", caller="+15551230001")
    calls = export_calls(store.engine, customer_id=-1, phones=["+15551230001"])
    assert calls[0]["recording"]["path"] == str(path) and calls[0]["recording"]["consent"] == "recorded"
    erased = erase_calls(store.engine, customer_id=-1, phones=["+15551230001"])
    assert erased.recordings == 1 and not path.exists()
    with Session(store.engine) as s:
        assert s.scalars(select(RecordingRow)).all() == []


# --- playback -----------------------------------------------------------------------------------------------------
def test_playback_is_for_staff_and_the_agent_of_the_call_audited_and_seekable(store: CallStore, tmp_path: Path) -> None:
    path = recorded_call(store, tmp_path, "play-1")
    recorded_call(store, tmp_path, "play-2")
    store.set_agent("play-2", "a1")
    users = UserStore(store.engine)
    users.add("sup", "supervisor", "pw-sup")
    users.add("ann", "agent", "pw-ann", agent_id="a1")
    app = FastAPI()
    app.include_router(router)
    app.state.users, app.state.runtime, app.state.transfer = users, SimpleNamespace(store=store), None

    def bearer(name: str) -> dict[str, str]:
        session = users.login(name, "pw-" + name)
        assert session is not None
        return {"Authorization": f"Bearer {session.token}"}

    async def run() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            url = "/api/calls/play-1/recording"
            assert (await client.get(url)).status_code == 401
            assert (await client.get(url, headers=bearer("ann"))).status_code == 404  # not her call
            whole = await client.get(url, headers=bearer("sup"))
            assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
            assert whole.content == path.read_bytes()
            part = await client.get(url, headers={**bearer("sup"), "Range": "bytes=44-1043"})
            assert part.status_code == 206 and part.content == path.read_bytes()[44:1044]
            assert (await client.get("/api/calls/play-2/recording", headers=bearer("ann"))).status_code == 200
            assert (await client.get("/api/calls/nothing/recording", headers=bearer("sup"))).status_code == 404

    asyncio.run(run())
    plays = users.audit_log(action="play_recording")
    assert {(a["username"], a["call_id"]) for a in plays} == {("sup", "play-1"), ("ann", "play-2")}
    assert len(plays) == 2  # the seek (Range from byte 44) is not another playback
