"""Prometheus metrics of the voice pipeline, exported at ``GET /metrics``.

Module-level, in the default registry: one process, one set of counters, whatever the number of calls.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

# Reply latency target is 0.8 s p50 / 1.2 s p95: buckets are dense around it.
_LATENCY_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0)
_INFER_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)

ACTIVE_CALLS = Gauge("voicebot_active_calls", "Calls in progress.", ["channel"])
CALLS = Counter("voicebot_calls_total", "Calls ended, by outcome.", ["channel", "outcome"])
TURNS = Counter("voicebot_turns_total", "Turns recorded, by speaker.", ["speaker"])
BARGE_INS = Counter("voicebot_barge_ins_total", "Times a caller interrupted the bot.")
REPLY_LATENCY = Histogram(
    "voicebot_reply_latency_seconds",
    "End of the caller's speech to the bot's first reply audio, measured in the server.",
    buckets=_LATENCY_BUCKETS,
)
STT_SECONDS = Histogram("voicebot_stt_seconds", "Time of one Whisper transcription.", buckets=_INFER_BUCKETS)
TTS_SECONDS = Histogram(
    "voicebot_tts_seconds", "Time to synthesise one sentence (cache misses only).", buckets=_INFER_BUCKETS
)
TTS_FIRST_AUDIO = Histogram(
    "voicebot_tts_first_audio_seconds", "Reply text to its first audio frame.", buckets=_INFER_BUCKETS
)
DIALOG_SECONDS = Histogram("voicebot_dialog_seconds", "Time of one dialog-engine turn.", buckets=_INFER_BUCKETS)


def render() -> tuple[bytes, str]:
    """The exposition text of every metric and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
