"""Wall and CPU time of one ``SharedModels.recognise`` call, two code versions or settings side by side. Prints JSON.

Every *side* is a checkout of this repository (``PATH``) with optional environment overrides of its config
(``PATH:VOICEBOT_MODELS__STT__SECOND_OPINION=none,...``); each runs in its own process (``SharedModels.load``, as
``voicebot serve`` loads it) and hears the same clips in turn, the order of the sides alternating from clip to clip,
so that a noisy shared machine weighs on all of them alike. Clips: the domain requests and answers of
``stt_choice.DEV_SET`` and the rows of ``tests/data/stt_short_dev.tsv`` (digits, numbers, one-word answers and
requests, sentences), spoken by rotating voices over a G.711 line (``phone_speech.PhoneListener``).

Per side: wall and process CPU ms per call ("median / p95 / mean"), for clips of 2 s or less and longer ones apart; and,
against the first side, every clip whose reading differs (text, rejection, confidence). ``--concurrent N`` sends N
clips at once (N calls transcribing together, as on a busy SIP node): times are per call, CPU is the process's over
the N calls divided by N.

    python benchmarks/stt_speed.py --side ../main --side . [--voices en-us,en-gb,piper] [--concurrent 2]
        [--rounds 1] [--limit 40]
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHORT_SET = HERE.parent / "tests" / "data" / "stt_short_dev.tsv"
SHORT_CLIP_S = 2.0


def worker() -> None:
    """One side: load the models as the product does, then recognise each batch of clips read from stdin."""
    from voicebot.config import load_settings
    from voicebot.pipeline.shared import SharedModels

    models = SharedModels.load(load_settings(None))
    print(json.dumps({"ready": True}), flush=True)
    pool: ThreadPoolExecutor | None = None
    for line in sys.stdin:
        batch = json.loads(line)
        clips = [(base64.b64decode(c["audio"]), c["expects"]) for c in batch]

        def one(clip: tuple[bytes, str | None]) -> dict[str, Any]:
            started = time.perf_counter()
            heard = models.recognise(*clip)
            return {"wall_ms": 1000 * (time.perf_counter() - started), "text": heard.text,
                    "rejected": heard.rejected, "confidence": heard.confidence}

        cpu = time.process_time()
        if len(clips) == 1:
            out = [one(clips[0])]
        else:
            pool = pool or ThreadPoolExecutor(len(clips))
            out = list(pool.map(one, clips))
        cpu_ms = 1000 * (time.process_time() - cpu) / len(clips)
        for o in out:
            o["cpu_ms"] = cpu_ms
        print(json.dumps(out), flush=True)
    models.close()


class Side:
    def __init__(self, spec: str):
        path, _, overrides = spec.partition(":")
        self.spec = spec
        env = dict(os.environ, PYTHONPATH=str(Path(path).resolve()))
        env.update(kv.partition("=")[::2] for kv in overrides.split(",") if kv)
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=path)
        assert self.proc.stdout is not None
        while not self.proc.stdout.readline().startswith('{"ready"'):
            pass

    def recognise(self, batch: list[tuple[bytes, str | None]]) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([{"audio": base64.b64encode(a).decode(), "expects": e}
                                          for a, e in batch]) + "\n")
        self.proc.stdin.flush()
        result: list[dict[str, Any]] = json.loads(self.proc.stdout.readline())
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def clips(voices: str, limit: int) -> list[dict[str, Any]]:
    from voicebot.phone_speech import PhoneListener, parse_voices

    sys.path.insert(0, str(HERE))
    from stt_choice import DEV_SET

    rows: list[tuple[str | None, str]] = list(DEV_SET)
    for row in csv.reader(SHORT_SET.read_text().splitlines(), delimiter="\t"):
        if row and not row[0].startswith("#"):
            rows.append((row[1] or None, row[2]))
    listener = PhoneListener(lambda _: "")
    spoken = parse_voices(voices)
    out = []
    for i, (expects, text) in enumerate(rows[:limit] if limit else rows):
        voice = spoken[i % len(spoken)]
        audio = listener.audio(text, voice)
        out.append({"said": text, "voice": voice.name, "expects": expects, "audio": audio,
                    "seconds": len(audio) / 32000})
    return out


def summary(values: list[float]) -> str:
    """ "median / p95 / mean" of ``values`` (ms)."""
    ordered = sorted(values)
    if not ordered:
        return ""
    return f"{statistics.median(ordered):.0f} / {ordered[int(0.95 * (len(ordered) - 1))]:.0f} / {statistics.fmean(ordered):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", action="append", default=[], help="PATH[:ENV=VALUE,...] (repeatable)")
    parser.add_argument("--voices", default="en-us,en-gb,piper,en-sc")
    parser.add_argument("--concurrent", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="times each clip is heard by each side")
    parser.add_argument("--limit", type=int, default=0, help="first N clips only")
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    heard = clips(args.voices, args.limit)
    sides = [Side(spec) for spec in (args.side or ["."])]
    results: list[list[dict[str, Any]]] = [[] for _ in sides]  # per side, per clip (last round's reading)
    times: list[dict[str, list[float]]] = [{"wall short": [], "wall long": [], "cpu short": [], "cpu long": []}
                                           for _ in sides]
    try:
        n = args.concurrent
        batches = [list(range(i, min(i + n, len(heard)))) for i in range(0, len(heard), n)]
        for r in range(args.rounds):
            for b, batch in enumerate(batches):
                order = list(range(len(sides)))
                if (b + r) % 2:
                    order.reverse()
                for s in order:
                    out = sides[s].recognise([(heard[i]["audio"], heard[i]["expects"]) for i in batch])
                    for i, o in zip(batch, out, strict=True):
                        length = "short" if heard[i]["seconds"] <= SHORT_CLIP_S else "long"
                        times[s][f"wall {length}"].append(o["wall_ms"])
                        times[s][f"cpu {length}"].append(o["cpu_ms"])
                        if r == args.rounds - 1:
                            results[s].append(o)
    finally:
        for side in sides:
            side.close()
    report: dict[str, Any] = {"clips": len(heard), "short": sum(c["seconds"] <= SHORT_CLIP_S for c in heard),
                              "voices": args.voices, "concurrent": args.concurrent, "rounds": args.rounds,
                              "sides": []}
    for s, side in enumerate(sides):
        entry: dict[str, Any] = {"side": side.spec}
        for key, values in times[s].items():
            entry[key] = summary(values)
        entry["wall all"] = summary(times[s]["wall short"] + times[s]["wall long"])
        entry["cpu all"] = summary(times[s]["cpu short"] + times[s]["cpu long"])
        entry["rejected"] = sum(o["rejected"] is not None for o in results[s])
        if s:
            entry["readings differing from the first side"] = [
                {"said": c["said"], "voice": c["voice"], "first": (a["text"], a["rejected"], a["confidence"]),
                 "this": (o["text"], o["rejected"], o["confidence"])}
                for c, a, o in zip(heard, results[0], results[s], strict=True)
                if (a["text"], a["rejected"], a["confidence"]) != (o["text"], o["rejected"], o["confidence"])]
        report["sides"].append(entry)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
