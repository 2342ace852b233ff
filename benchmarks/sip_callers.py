"""What the SIP benchmarks share: speech synthesised once, the callers' user agent, a call answered with a caller's
ear on the bot's audio, `voicebot serve` in a subprocess with its log drained, one caller's turn (speak, time the
reply, wait for it to end), and what the bot's record of a call says it heard, understood and answered."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telephony.call import CallLeg  # noqa: E402
from telephony.config import SipConfig  # noqa: E402
from telephony.sip.ua import UserAgent  # noqa: E402

LOUD_RMS = 500.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthesise(folder: Path, text: str, name: str = "say") -> bytes:
    """``text`` spoken by espeak-ng as 16 kHz mono PCM16 (needs espeak-ng and sox)."""
    wav = folder / f"{name}.wav"
    raw = folder / f"{name}.raw"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
    subprocess.run(["sox", str(wav), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed", "-t", "raw", str(raw)],
                   check=True)
    return raw.read_bytes()


class Ear:
    """Watches a leg's incoming audio: when it is loud, and when it last went quiet."""

    def __init__(self) -> None:
        self.loud_since: float | None = None
        self.last_loud: float | None = None
        self.first_loud_after: float | None = None
        self.mark: float | None = None

    def __call__(self, pcm: bytes) -> None:
        now = time.monotonic()
        x = np.frombuffer(pcm, np.int16).astype(np.float64)
        if len(x) and np.sqrt((x**2).mean()) > LOUD_RMS:
            self.last_loud = now
            if self.mark is not None and self.first_loud_after is None:
                self.first_loud_after = now

    def listen_from_now(self) -> None:
        """Time the next loud audio from this moment (the end of the caller's speech)."""
        self.mark = time.monotonic()
        self.first_loud_after = None

    async def quiet_for(self, seconds: float, timeout: float) -> bool:
        """Until the bot has spoken and then been quiet for ``seconds``."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.last_loud is not None and time.monotonic() - self.last_loud >= seconds:
                return True
            await asyncio.sleep(0.05)
        return False


def caller_agent() -> UserAgent:
    """The callers' SIP user agent (not started): UDP on a free loopback port, RTP ports 40000-40999, and INVITEs
    from one source not rate-limited, as many callers share it."""
    return UserAgent(SipConfig(listen_udp=f"127.0.0.1:{free_port()}", listen_tcp=None,
                               rtp_port_min=40000, rtp_port_max=40999, invites_per_second_per_source=100))


@asynccontextmanager
async def answered_call(ua: UserAgent, target: str, ring_timeout: float, greeting_timeout: float,
                        ) -> AsyncIterator[tuple[CallLeg, Ear, bool]]:
    """Dial ``target`` (a :class:`DialError` goes to the caller), put an :class:`Ear` on the leg and wait until the
    bot's greeting has ended; yields the leg, the ear and whether the greeting was heard (within
    ``greeting_timeout``), and hangs up after the block."""
    leg: CallLeg = await ua.dial(target, ring_timeout=ring_timeout)
    ear = Ear()
    leg.add_sink(ear)
    try:
        greeted = await ear.quiet_for(1.0, greeting_timeout)
        yield leg, ear, greeted
    finally:
        await leg.hangup()


async def say_and_time_reply(leg: CallLeg, ear: Ear, speech: bytes, timeout: float = 15) -> float | None:
    """Send ``speech`` on ``leg`` and return the seconds from its end to the bot's first audible reply
    (None: no reply within ``timeout`` or the call ended)."""
    await leg.write_audio(speech)
    while leg.queued_ms > 0 and leg.state == "answered":
        await asyncio.sleep(0.005)
    ear.listen_from_now()
    assert ear.mark is not None
    deadline = ear.mark + timeout
    while ear.first_loud_after is None and time.monotonic() < deadline and leg.state == "answered":
        await asyncio.sleep(0.01)
    return round(ear.first_loud_after - ear.mark, 3) if ear.first_loud_after is not None else None


READER = ("bench-reader", "supervisor", "bench-reader-password")  # reads every call's record, as a supervisor may


@dataclass(frozen=True)
class Understanding:
    """What the bot's record of one call says about one request the caller made in it: what speech recognition
    heard (the caller turns, joined), its word error rate against what was said (normalised as `voicebot eval stt`
    normalises), the requests the NLU found in it (dialogue acts such as greet left out, as the record's own
    ``intents`` leaves them out), and the question the bot's first reply after it waits an answer to (its trace's
    ``expect``) with the reply's text."""

    heard: str
    wer: float
    intents: tuple[str, ...]
    reply_expect: str | None
    reply: str

    def intent_right(self, intent: str) -> bool:
        """The NLU found exactly ``intent`` and no other request."""
        return self.intents == (intent,)


def understanding(record: dict[str, Any] | None, said: str) -> Understanding:
    """How the call in ``record`` (as ``GET /api/calls/{id}`` gives it; None: no record) heard, understood and
    answered a caller who said ``said`` once after the greeting. No record, or no caller turn, is everything wrong:
    nothing heard (WER 1), no request, no reply."""
    from audio.evaluation import word_errors
    from voicebot.storage.calls import DIALOGUE_ACTS

    turns = (record or {}).get("turns") or []
    first = next((i for i, t in enumerate(turns) if t.get("speaker") == "caller"), None)
    callers = [t for t in turns if t.get("speaker") == "caller"]
    heard = " ".join(str(t.get("text") or "").strip() for t in callers).strip()
    errors, words = word_errors(said, heard)
    names: list[str] = []
    for turn in callers:
        for hit in turn.get("intents") or []:
            if hit.get("name") not in DIALOGUE_ACTS and hit.get("name") not in names:
                names.append(hit["name"])
    reply = next((t for t in turns[first + 1:] if t.get("speaker") == "bot"), None) if first is not None else None
    expect = (((reply or {}).get("extra") or {}).get("trace") or {}).get("expect")
    return Understanding(heard=heard, wer=round(errors / words, 3) if words else 0.0, intents=tuple(names),
                         reply_expect=expect, reply=str((reply or {}).get("text") or ""))


@dataclass
class Server:
    """`voicebot serve` running in a subprocess; ``lines`` is its log so far (read by a thread), ``url`` its HTTP
    API (with the :data:`READER` login)."""

    process: subprocess.Popen[str]
    url: str = ""
    lines: list[str] = field(default_factory=list)
    _token: str | None = field(default=None, init=False, repr=False)

    def call_record(self, call_id: str) -> dict[str, Any] | None:
        """``GET /api/calls/{call_id}`` as the reader (None: no such record)."""
        if self._token is None:
            request = urllib.request.Request(
                self.url + "/api/login", method="POST", headers={"Content-Type": "application/json"},
                data=json.dumps({"username": READER[0], "password": READER[2]}).encode())
            for _ in range(100):  # SIP is ready a moment before HTTP
                try:
                    with urllib.request.urlopen(request, timeout=30) as res:
                        self._token = json.loads(res.read())["token"]
                    break
                except urllib.error.URLError as exc:
                    if isinstance(exc, urllib.error.HTTPError):
                        raise
                    time.sleep(0.1)
            else:
                sys.exit(f"cannot log in to voicebot serve at {self.url}")
        request = urllib.request.Request(f"{self.url}/api/calls/{urllib.parse.quote(call_id, safe='')}",
                                         headers={"Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as res:
                record: dict[str, Any] = json.loads(res.read())
                return record
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def ended_call_records(self, call_ids: list[str], timeout: float = 15) -> dict[str, dict[str, Any] | None]:
        """The records of ``call_ids`` once each has its end written (the server writes records in the background
        after a call ends); a call without an ended record after ``timeout`` seconds maps to its record so far, or
        None."""
        records: dict[str, dict[str, Any] | None] = {}
        pending = list(call_ids)
        deadline = time.monotonic() + timeout
        while pending:
            for call_id in list(pending):
                records[call_id] = self.call_record(call_id)
                if (records[call_id] or {}).get("end"):
                    pending.remove(call_id)
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        return records


@contextmanager
def serve(folder: Path, sip_port: int, rtp_ports: tuple[int, int] = (41000, 41999), log_path: str | None = None,
          ) -> Iterator[Server]:
    """`voicebot serve` over SIP on loopback ``sip_port`` with a fresh SQLite database in ``folder`` (the demo
    customers and the :data:`READER` login), for the block; its log goes to ``log_path`` if given
    (SIP_BENCH_SERVER_LOG by default)."""
    from voicebot.users import UserStore

    db_url = f"sqlite:///{folder}/bench.db"
    UserStore.from_url(db_url).add(*READER)  # upgrades the new database first
    http_port = free_port()
    (folder / "voicebot.yaml").write_text(
        f"database:\n  url: {db_url}\n  seed_demo: true\nserver:\n  host: 127.0.0.1\n  port: {http_port}\n"
        f"sip:\n  listen_udp: 127.0.0.1:{sip_port}\n  listen_tcp: ''\n  rtp_port_min: {rtp_ports[0]}\n"
        f"  rtp_port_max: {rtp_ports[1]}\n  invites_per_second_per_source: 100\nlog_level: WARNING\n")
    process = subprocess.Popen([sys.executable, "-m", "voicebot", "serve", "--config", str(folder / "voicebot.yaml")],
                               cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "HF_HUB_OFFLINE": "1", "VOICEBOT_LOG_LEVEL": "INFO"})
    server = Server(process, url=f"http://127.0.0.1:{http_port}")
    try:
        assert process.stderr is not None
        for line in process.stderr:
            server.lines.append(line)
            if "SIP ready" in line:
                break
        else:
            sys.exit("voicebot serve did not start:\n" + "".join(server.lines[-20:]))
        # Keep reading its log so a full pipe never blocks the server.
        log_path = log_path or os.environ.get("SIP_BENCH_SERVER_LOG")
        sink = open(log_path, "w") if log_path else None  # noqa: SIM115 - lives as long as the server

        def drain() -> None:
            for line in process.stderr:  # type: ignore[union-attr]
                server.lines.append(line)
                if sink:
                    sink.write(line)
                    sink.flush()

        threading.Thread(target=drain, daemon=True).start()
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
