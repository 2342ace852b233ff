"""A WebRTC caller (aiortc): plays a WAV file as its microphone in real time, records the bot.

Used by ``voicebot call``, the end-to-end tests and the latency benchmark. Reply latency is measured
at the client: from the end of each stretch of speech in the input file (the moment its last sample
was sent) to the first bot audio that arrives after it.
"""

from __future__ import annotations

import asyncio
import fractions
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soxr
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from audio.pcm import FRAME_MS

RATE = 48000  # Opus's rate: the client sends and records at it, as a browser does
FRAME = RATE * FRAME_MS // 1000  # samples per frame, as long as a call frame
BOT_LOUD_RMS = 200.0  # int16 RMS above which received audio counts as the bot talking


class ClientError(Exception):
    """The call could not be made (bad input file, server unreachable, offer refused)."""


class LoginError(ClientError):
    """The server refused a request for want of a login (HTTP 401 / 403)."""


@dataclass
class Segment:
    """A stretch of speech in the input file, in seconds from its start."""

    start: float
    end: float


@dataclass
class CallResult:
    call_id: str
    record: dict[str, Any] | None
    segments: list[Segment]
    latencies_ms: list[float | None]
    bot_onsets: list[float]  # seconds since the call connected
    bot_speech: list[tuple[float, float]]  # (start, end) of each burst of bot audio, seconds since connected
    bot_audio: np.ndarray = field(repr=False)  # 48 kHz mono int16, everything received
    play_started: float = 0.0  # seconds since connection when the file started playing
    audio_started: float = 0.0  # seconds since connection of the first sample of ``bot_audio``
    hung_up_by: str = "caller"

    def bot_audio_after(self, seconds: float) -> np.ndarray:
        """What the bot said from ``seconds`` after the file started playing (48 kHz mono int16)."""
        start = int((self.play_started + seconds - self.audio_started) * RATE)
        return self.bot_audio[max(0, start) :]

    def barge_in_stops_ms(self) -> list[float]:
        """For each caller segment that began while the bot was talking: how long the bot went on."""
        out = []
        for seg in self.segments:
            t = self.play_started + seg.start
            for start, end in self.bot_speech:
                if start < t < end:
                    out.append(round((end - t) * 1000, 1))
        return out

    def summary(self) -> dict[str, Any]:
        turns = (self.record or {}).get("turns", [])
        return {
            "call_id": self.call_id,
            "outcome": (self.record or {}).get("outcome"),
            "hung_up_by": self.hung_up_by,
            "transcript": [{"speaker": t["speaker"], "text": t["text"]} for t in turns],
            "intents": [[i.get("name") for i in t.get("intents", [])] for t in turns if t["speaker"] == "caller"],
            "turns": [
                {"speech_start_s": round(s.start, 3), "speech_end_s": round(s.end, 3), "latency_ms": lat}
                for s, lat in zip(self.segments, self.latencies_ms, strict=True)
            ],
            "server_latency_ms": [t.get("latency_ms") for t in turns if t["speaker"] == "bot" and t.get("latency_ms")],
            "barge_in_stop_ms": self.barge_in_stops_ms(),
            "bot_audio_s": round(len(self.bot_audio) / RATE, 2),
        }


def read_wav(path: str | Path, rate: int = RATE) -> np.ndarray:
    """A WAV file as mono int16 at ``rate``; raises :class:`ClientError` for a missing or unusable file."""
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, src_rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            data = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise ClientError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise ClientError(f"{path}: not a PCM WAV file ({exc})") from None
    if width != 2:
        raise ClientError(f"{path}: must be 16-bit PCM (it has {8 * width}-bit samples)")
    samples = np.frombuffer(data, dtype=np.int16).reshape(-1, channels).mean(axis=1).astype(np.int16)
    if src_rate != rate:
        samples = soxr.resample(samples, src_rate, rate).astype(np.int16)
    return samples


def write_wav(path: str | Path, samples: np.ndarray, rate: int = RATE) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())


def speech_segments(samples: np.ndarray, rate: int = RATE, min_gap_s: float = 0.6) -> list[Segment]:
    """Stretches of speech in ``samples`` by frame energy; pauses shorter than ``min_gap_s`` are bridged."""
    hop = rate * FRAME_MS // 1000
    n = len(samples) // hop
    if n == 0:
        return []
    frames = samples[: n * hop].astype(np.float32).reshape(n, hop)
    rms = np.sqrt((frames**2).mean(axis=1))
    # Low enough to keep a word's soft ending (a final "s" is 20 dB below the vowels) as speech,
    # above the recording's own noise floor.
    threshold = max(0.015 * float(rms.max()), 3.0 * float(np.percentile(rms, 10)), 30.0)
    voiced = np.flatnonzero(rms > threshold)
    segments: list[Segment] = []
    for i in voiced:
        t0, t1 = i * hop / rate, (i + 1) * hop / rate
        if segments and t0 - segments[-1].end < min_gap_s:
            segments[-1].end = t1
        else:
            segments.append(Segment(float(t0), float(t1)))
    return [s for s in segments if s.end - s.start >= 0.15]


class FilePlayer(MediaStreamTrack):
    """An aiortc audio track: silence, then the file in real time once ``play()`` is called, then silence."""

    kind = "audio"

    def __init__(self, samples: np.ndarray):
        super().__init__()
        self._samples = samples
        self._pos = -1  # -1: not playing yet
        self._pts = 0
        self._t0: float | None = None
        self.play_started: float | None = None  # monotonic time of the file's first sample
        self.finished = asyncio.Event()

    def play(self) -> None:
        if self._pos < 0:
            self._pos = 0

    def say(self, samples: np.ndarray) -> None:
        """Play ``samples`` now, instead of whatever was left of the file."""
        self._samples = samples
        self._pos = 0
        self.finished.clear()

    async def recv(self) -> AudioFrame:
        if self._t0 is None:
            self._t0 = time.monotonic()
        due = self._t0 + self._pts / RATE
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = np.zeros(FRAME, dtype=np.int16)
        if self._pos >= 0 and self._pos < len(self._samples):
            if self._pos == 0:
                self.play_started = due
            part = self._samples[self._pos : self._pos + FRAME]
            chunk[: len(part)] = part
            self._pos += FRAME
            if self._pos >= len(self._samples):
                self.finished.set()
        frame = AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


class Recorder:
    """Collects the bot's audio with arrival times; notes where each burst of bot speech starts."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.onsets: list[float] = []  # monotonic
        self.intervals: list[list[float]] = []  # [start, end] of each burst of bot speech, monotonic
        self.last_loud: float | None = None
        self.first_at: float | None = None  # monotonic arrival of the first frame (start of the audio)
        self.closed = asyncio.Event()

    async def run(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if self.first_at is None:
                    self.first_at = now - frame.samples / frame.sample_rate
                pcm = frame.to_ndarray()
                channels = len(frame.layout.channels)
                mono = pcm.reshape(-1, channels).mean(axis=1) if channels > 1 else pcm.reshape(-1)
                if frame.sample_rate != RATE:
                    mono = soxr.resample(mono.astype(np.int16), frame.sample_rate, RATE)
                mono = mono.astype(np.int16)
                self.chunks.append(mono)
                rms = float(np.sqrt(np.mean(mono.astype(np.float32) ** 2))) if len(mono) else 0.0
                if rms > BOT_LOUD_RMS:
                    # Opus frames are 20 ms: the onset is the start of this frame.
                    start = now - len(mono) / RATE
                    if self.last_loud is None or start - self.last_loud > 0.3:
                        self.onsets.append(start)
                        self.intervals.append([start, now])
                    else:
                        self.intervals[-1][1] = now
                    self.last_loud = now
        except (MediaStreamError, asyncio.CancelledError):
            pass
        finally:
            self.closed.set()

    def quiet_for(self, seconds: float) -> bool:
        return self.last_loud is not None and time.monotonic() - self.last_loud >= seconds

    def audio(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.int16)


def http_json(method: str, url: str, body: Any = None, timeout: float = 30.0,
              headers: dict[str, str] | None = None) -> Any:
    """``body`` sent as JSON, the JSON answer back; :class:`LoginError` on 401/403, :class:`ClientError` on any
    other HTTP error or an unreachable server."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return json.loads(res.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        if exc.code in (401, 403):
            raise LoginError(f"{method} {url}: HTTP {exc.code}: {detail}") from None
        raise ClientError(f"{method} {url}: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ClientError(f"{method} {url}: {exc}") from None


async def place_call(
    url: str,
    play: str | Path,
    *,
    start_after: float | None = None,
    caller_token: str | None = None,
    tail_s: float = 2.5,
    max_wait_s: float = 25.0,
    greeting_timeout_s: float = 20.0,
    stop_after_s: float | None = None,
    headers: dict[str, str] | None = None,
) -> CallResult:
    """Call the bot at ``url`` (the server's base URL) and play ``play`` as the caller's microphone.

    ``start_after``: seconds after connecting to start playing; None waits for the greeting to end.
    After the file, the call stays up until the bot has been quiet for ``tail_s`` (at most
    ``max_wait_s``) or the bot hangs up; then the server's record of the call is fetched.
    ``stop_after_s`` hangs up that many seconds into the file (a caller who drops mid-sentence).
    ``caller_token``: the caller's number signed for the server (voicebot.server.caller_token); else anonymous.
    The record is read with the key the server's answer gives the caller (``X-Call-Key``), plus ``headers``.
    """
    base = url.rstrip("/")
    samples = read_wav(play)
    segments = speech_segments(samples)
    player = FilePlayer(samples)
    recorder = Recorder()
    pc = RTCPeerConnection()
    pc.addTransceiver(player, direction="sendrecv")
    record_task: asyncio.Task | None = None
    server_closed = asyncio.Event()

    @pc.on("track")
    def on_track(track: Any) -> None:
        nonlocal record_task
        if track.kind == "audio":
            record_task = asyncio.ensure_future(recorder.run(track))

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        if pc.connectionState in ("closed", "failed"):
            server_closed.set()

    try:
        await pc.setLocalDescription(await pc.createOffer())
        body: dict[str, Any] = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
        if caller_token:
            body["request_data"] = {"caller_token": caller_token}
        answer = await asyncio.to_thread(http_json, "POST", f"{base}/api/offer", body)
        call_id = answer["pc_id"]
        if answer.get("call_key"):  # the caller's own key to the call's record (no login needed)
            headers = {**(headers or {}), "X-Call-Key": answer["call_key"]}
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        connected_at = time.monotonic()

        async def bot_gone() -> bool:
            return server_closed.is_set() or recorder.closed.is_set()

        # 1. Wait for the moment to speak.
        if start_after is None:
            deadline = time.monotonic() + greeting_timeout_s
            while time.monotonic() < deadline and not await bot_gone():
                if recorder.quiet_for(0.8):
                    break
                await asyncio.sleep(0.02)
        else:
            await asyncio.sleep(start_after)
        player.play()
        play_at = time.monotonic()
        # 2. Play the file, then wait for the bot's last answer.
        while not player.finished.is_set() and not await bot_gone():
            if stop_after_s is not None and time.monotonic() - play_at >= stop_after_s:
                break
            await asyncio.sleep(0.02)
        finished_at = time.monotonic()
        while (
            stop_after_s is None and not await bot_gone() and time.monotonic() - finished_at < max_wait_s
        ):
            heard_since = recorder.last_loud is not None and recorder.last_loud > finished_at
            if heard_since and recorder.quiet_for(tail_s):
                break
            if not heard_since and time.monotonic() - finished_at > tail_s + 6.0:
                break
            await asyncio.sleep(0.05)
        hung_up_by = "bot" if await bot_gone() else "caller"
    finally:
        await pc.close()
        if record_task is not None:
            record_task.cancel()
            await asyncio.gather(record_task, return_exceptions=True)

    record = await asyncio.to_thread(_wait_for_record, base, call_id, headers=headers)
    play_started = player.play_started or connected_at
    latencies: list[float | None] = []
    for i, seg in enumerate(segments):
        end = play_started + seg.end
        until = play_started + segments[i + 1].start if i + 1 < len(segments) else float("inf")
        onset = next((t for t in recorder.onsets if end < t < until), None)
        latencies.append(None if onset is None else round(float(onset - end) * 1000, 1))
    return CallResult(
        call_id=call_id,
        record=record,
        segments=segments,
        latencies_ms=latencies,
        bot_onsets=[round(t - connected_at, 3) for t in recorder.onsets],
        bot_speech=[(round(a - connected_at, 3), round(b - connected_at, 3)) for a, b in recorder.intervals],
        bot_audio=recorder.audio(),
        play_started=round(play_started - connected_at, 3),
        audio_started=round((recorder.first_at or connected_at) - connected_at, 3),
        hung_up_by=hung_up_by,
    )


def _wait_for_record(base: str, call_id: str, timeout_s: float = 20.0,
                     headers: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The server's record of the call once it is closed (it closes a moment after the line drops);
    None at once when the server wants a login these ``headers`` do not give."""
    deadline = time.monotonic() + timeout_s
    record = None
    while time.monotonic() < deadline:
        try:
            record = http_json("GET", f"{base}/api/calls/{urllib.parse.quote(call_id, safe='')}", headers=headers)
        except LoginError:
            return None
        except ClientError:
            record = None
        if record is not None and record.get("end"):
            return record
        time.sleep(0.2)
    return record
