"""``voicebot bench latency``: reply latency over WebRTC on loopback, printed as JSON.

Reply latency is measured at the client: from the end of the caller's speech (known from the input
file, played in real time) to the first bot audio that arrives. The server's record of each bot turn
gives the share of each stage: end-of-turn wait, STT, dialog, TTS first audio; the rest is transport
(jitter buffers, packetisation) and the VAD's view of where speech ended.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import numpy as np

PHRASES = [
    "Where is my order?",
    "I want to change my delivery address.",
    "I forgot my password and need to reset it.",
    "I have a question about my bill.",
    "I would like to return an item I bought.",
    "Can you tell me the status of my order please?",
    "I need to cancel my subscription.",
    "There is a charge on my invoice that I do not understand.",
]


@click.group()
def bench() -> None:
    """Benchmarks that print JSON."""


@bench.command("latency")
@click.option("--url", default=None, help="A running server; default: start one on a free loopback port.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="voicebot.yaml for the server this command starts.")
@click.option("--turns", "n_turns", type=int, default=12, show_default=True, help="Caller turns in all.")
@click.option("--per-call", type=int, default=4, show_default=True, help="Caller turns per call.")
@click.option("--gap", type=float, default=8.0, show_default=True, help="Seconds between caller turns.")
@click.option("--barge-ins", type=int, default=3, show_default=True, help="Calls that talk over the greeting.")
def latency(url: str | None, config_path: str | None, n_turns: int, per_call: int, gap: float, barge_ins: int) -> None:
    """N caller turns over WebRTC on loopback; p50/p95 reply latency and the share of each stage.

    Also: how long the bot goes on talking after a caller starts speaking over it (barge-in)."""
    from loguru import logger

    logger.remove()
    with tempfile.TemporaryDirectory(prefix="voicebot-bench-") as tmp:
        work = Path(tmp)
        if url is None:
            from voicebot.client.local_server import ServerProcess

            config: dict[str, Any] = {}
            if config_path:
                from voicebot.cli.common import settings_or_exit
                from voicebot.config import read_config_file

                # A file that would not load is reported here as every command reports it (exit 2), rather than
                # as a traceback or a server that never starts.
                settings_or_exit(config_path)
                # Read strictly: re-written for the bench's server, a repeated key would otherwise vanish unseen.
                config = read_config_file(Path(config_path))
            # The bench's own pauses must not trigger the silence prompt.
            config.setdefault("call", {}).setdefault("silence_prompt_s", gap + 20)
            with ServerProcess(work / "server", config) as server:
                result = run_latency(server.url, work, n_turns, per_call, gap)
                result["barge_in"] = run_barge_in(server.url, work, barge_ins)
        else:
            result = run_latency(url, work, n_turns, per_call, gap)
            result["barge_in"] = run_barge_in(url, work, barge_ins)
    click.echo(json.dumps(result, indent=2))


def _utterance_files(work: Path, n_turns: int, per_call: int, gap: float) -> list[Path]:
    from audio.pcm import SAMPLE_RATE
    from audio.speech import espeak_ng, piper_tts

    files = []
    rate = SAMPLE_RATE
    turn = 0
    call = 0
    while turn < n_turns:
        parts = []
        for _ in range(min(per_call, n_turns - turn)):
            text = PHRASES[turn % len(PHRASES)]
            # Two voices: the product's own Piper voice and espeak-ng.
            if turn % 2 == 0:
                samples, _ = piper_tts(text, sample_rate=rate, noise_scale=0.0, noise_w_scale=0.0)
            else:
                samples, _ = espeak_ng(text, sample_rate=rate)
            parts += [samples, np.zeros(int(gap * rate), np.float32)]
            turn += 1
        path = work / f"call{call}.wav"
        from audio.speech import write_wav

        write_wav(path, np.concatenate(parts), rate)
        files.append(path)
        call += 1
    return files


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(float(np.percentile(values, q)), 1)


def run_latency(url: str, work: Path, n_turns: int, per_call: int, gap: float) -> dict[str, Any]:
    """Play ``n_turns`` synthesised caller turns to the server at ``url``; latency statistics as data."""
    from voicebot.client.webrtc import place_call

    client: list[float] = []
    server: list[float] = []
    stages: dict[str, list[float]] = {}
    missed = 0
    for path in _utterance_files(work, n_turns, per_call, gap):
        result = asyncio.run(place_call(url, path, tail_s=2.0))
        client += [lat for lat in result.latencies_ms if lat is not None]
        missed += sum(1 for lat in result.latencies_ms if lat is None)
        for turn in (result.record or {}).get("turns", []):
            if turn["speaker"] != "bot" or turn.get("latency_ms") is None:
                continue
            server.append(turn["latency_ms"])
            for name, value in turn.get("extra", {}).get("stages", {}).items():
                stages.setdefault(name, []).append(value)
        print(f"call {result.call_id}: client latencies {result.latencies_ms}", file=sys.stderr)
    speculations = stages.pop("speculations", [])
    stage_means = {name: round(statistics.fmean(v), 1) for name, v in stages.items()}
    mean_client = statistics.fmean(client) if client else 0.0
    mean_server = statistics.fmean(server) if server else 0.0
    # endpoint_ms contains the STT that ran during the pause: split it into waiting for silence and
    # waiting for the transcript, so the shares add up to the server-side latency.
    shares_ms = {
        "end_of_turn_wait": round(stage_means.get("endpoint_ms", 0) - stage_means.get("stt_wait_ms", 0), 1),
        "stt_wait_after_end_of_turn": stage_means.get("stt_wait_ms"),
        "dialog": stage_means.get("dialog_ms"),
        "tts_first_audio": stage_means.get("tts_first_ms"),
        "transport_and_vad_offset": round(mean_client - mean_server, 1),
    }
    return {
        "turns": len(client) + missed,
        "replies_heard": len(client),
        "no_reply": missed,
        "client_latency_ms": {"p50": _pct(client, 50), "p95": _pct(client, 95), "mean": round(mean_client, 1),
                              "max": max(client) if client else None},
        "server_latency_ms": {"p50": _pct(server, 50), "p95": _pct(server, 95), "mean": round(mean_server, 1)},
        "stage_means_ms": stage_means,
        # transcriptions started per caller turn (more than one: the caller went on after a speculation began)
        "speculations_per_turn": round(statistics.fmean(speculations), 2) if speculations else None,
        "shares_ms": shares_ms,
        "shares": {k: round(v / mean_client, 3) if mean_client and v is not None else None
                   for k, v in shares_ms.items()},
        "note": "stt_ms runs speculatively during the end-of-turn wait; only stt_wait adds to latency",
    }


def run_barge_in(url: str, work: Path, calls: int) -> dict[str, Any]:
    """Talk over the greeting ``calls`` times; how long the bot's audio went on at the client."""
    from audio.pcm import SAMPLE_RATE
    from audio.speech import espeak_ng, write_wav
    from voicebot.client.webrtc import place_call

    samples, rate = espeak_ng("Sorry to interrupt, where is my order?", sample_rate=SAMPLE_RATE)
    path = write_wav(work / "barge.wav", np.concatenate([samples, np.zeros(rate, np.float32)]), rate)
    stops: list[float] = []
    for _ in range(calls):
        result = asyncio.run(place_call(url, path, start_after=1.5, tail_s=1.5))
        stops += result.barge_in_stops_ms()
    return {
        "calls": calls,
        "bot_stopped_after_ms": stops,
        "p50": _pct(stops, 50),
        "max": max(stops) if stops else None,
        "note": "caller speech onset (client) to the end of the bot's audio at the client",
    }
