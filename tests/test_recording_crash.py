"""Recordings left open by a process that died: a real process records two calls into a real SQLite file and is
killed (SIGKILL) mid-recording; the next start-up's sweep (``CallStore.close_stale``, run by ``voicebot.runtime``
and by a cluster node for its own and a lost node's calls) closes both recordings: the one whose caller heard the
announcement is kept as ``interrupted``, its file readable and as long as the audio it holds; the one whose
greeting was still playing is deleted (the caller never had the chance to decline). A WAV whose header was never
patched and whose last frame is cut is made readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine

from audio.pcm import SAMPLE_RATE
from voicebot.recording import StereoRecorder, repair_wav
from voicebot.storage import CallStore
from voicebot.storage.schema import upgrade

CHILD = r"""
import asyncio, sys
from datetime import UTC, datetime
import numpy as np
from sqlalchemy import create_engine
from audio.pcm import FRAME_SAMPLES, SAMPLE_RATE
from voicebot.config import Settings
from voicebot.monitor import Monitors
from voicebot.recording import call_recording
from voicebot.storage import CallStore

url, folder = sys.argv[1], sys.argv[2]
store = CallStore(create_engine(url))
settings = Settings(recording={"enabled": True, "folder": folder})
monitors = Monitors()
frame = (np.sin(2 * np.pi * 440 * np.arange(FRAME_SAMPLES) / SAMPLE_RATE) * 8000).astype("<i2").tobytes()


async def main() -> None:
    now = datetime.now(UTC)
    for call_id, heard in (("heard", True), ("unheard", False)):
        await store.arun("open_call", call_id, "sip", "+15550001111")
        # The greeting with the announcement: played to its end, or still playing when the process dies.
        await store.arun("add_turn", call_id, "bot", "Hello. This call may be recorded.", now, now if heard else None)
        recording = call_recording(settings, store, call_id)
        recording.monitors = monitors
        await recording.start()
    await store.aflush()
    print("recording", flush=True)
    while True:  # the callers talk until the process is killed
        for call_id in ("heard", "unheard"):
            monitors.feed(call_id, "caller", frame)
        await asyncio.sleep(0.02)


asyncio.run(main())
"""


def wav_seconds(path: Path) -> float:
    """The length of the audio a WAV's header announces (the wave module reads what the header says)."""
    with wave.open(str(path)) as w:
        frames = w.readframes(w.getnframes())
        assert len(frames) == w.getnframes() * w.getnchannels() * w.getsampwidth()
        return w.getnframes() / w.getframerate()


def test_a_killed_process_leaves_no_recording_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'voicebot.db'}"
    upgrade(url)
    folder = tmp_path / "recordings"
    child = subprocess.Popen([sys.executable, "-c", CHILD, url, str(folder)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "recording"
        files = {p.stem: p for p in folder.rglob("*.wav")}
        assert set(files) == {"heard", "unheard"}
        deadline = time.monotonic() + 60
        while files["heard"].stat().st_size < 44 + SAMPLE_RATE * 4 and time.monotonic() < deadline:  # 1 s stereo
            time.sleep(0.05)
        assert files["heard"].stat().st_size >= 44 + SAMPLE_RATE * 4, "the recorder wrote no second of audio"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)

    store = CallStore(create_engine(url))
    assert store.close_stale() == 2  # the next start-up
    kept = store.recording("heard")
    assert kept is not None and kept.consent == "interrupted"
    assert kept.path == str(files["heard"]) and files["heard"].is_file()
    assert kept.bytes == files["heard"].stat().st_size
    assert abs(kept.duration_s - wav_seconds(files["heard"])) < 0.01 and kept.duration_s >= 1.0
    record = store.get("heard")
    assert record is not None and record["outcome"] == "interrupted"
    assert record["recording"]["available"] and record["recording"]["interrupted"]
    assert record["recording"]["duration_s"] == kept.duration_s

    gone = store.recording("unheard")
    assert gone is not None and gone.consent == "unannounced" and gone.path is None
    assert not files["unheard"].exists()
    record = store.get("unheard")
    assert record is not None and not record["recording"]["available"]

    assert store.close_stale() == 0 and store.recording("heard").consent == "interrupted"  # type: ignore[union-attr]


def test_a_cut_wav_is_made_readable(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    recorder = StereoRecorder(path, max_s=60)
    recorder.start()
    recorder.push("caller", (np.ones(SAMPLE_RATE, np.int16) * 1000).tobytes())
    done = recorder.stop()
    data = bytearray(path.read_bytes())
    data[4:8] = data[40:44] = (0).to_bytes(4, "little")  # the header as written before the first patch
    path.write_bytes(bytes(data) + b"\x01\x02\x03")  # and half a stereo frame, cut by the kill
    repaired = repair_wav(path)
    assert repaired is not None and repaired.size == done.size == path.stat().st_size
    assert repaired.duration_s == wav_seconds(path) == done.duration_s
    assert repair_wav(tmp_path / "missing.wav") is None
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert repair_wav(empty) is None
