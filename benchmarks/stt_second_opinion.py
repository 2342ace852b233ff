"""Whether a second recogniser (Whisper tiny.en) reading the same clip helps the NLU when Whisper base is unsure.

Every clip goes through the product's STT path twice, once with each model (``SharedModels.recognise``: the same
fitted window, domain prompt, rejection rules, recovery and short-clip decoding; tiny.en has no language guess), and
both readings are kept with their mean token log probability, word probabilities and CPU time (process time). Clips:
the spoken dev set with every voice (``tests/data/spoken_dev.tsv``, 612 clips, as ``voicebot eval spoken --each``),
and the bad input of ``benchmarks/stt_rejection.py`` (199 English clips, 112 to reject) and of
``benchmarks/stt_short_foreign.py`` (120 short foreign answers).

Then every candidate rule is scored on the saved readings with the shipped NLU: (a) the NLU always chooses between
the two readings (``dialogs.nlu.nbest.choose``, base's first); (b) only when base's transcript confidence is below X;
(c) tiny.en's reading replaces a clip base rejected (for the reasons listed), if tiny.en accepts it. Reports spoken dev
single / multi (every voice and voices in turn), how many foreign or noise clips would become an action, and the
extra CPU per clip.

    python benchmarks/stt_second_opinion.py --save readings.json [--only dev|bad]
    python benchmarks/stt_second_opinion.py --load readings.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SPOKEN_DEV = DATA / "spoken_dev.tsv"


@dataclass
class Reading:
    text: str
    confidence: float
    rejected: str | None
    avg_logprob: float | None
    decoded: str
    words: list[tuple[str, float]]
    recovered_from: str | None
    cpu_ms: float


@dataclass
class Clip:
    label: str  # "dev" (spoken dev row), "speech" (English to hear), "reject" (must give no action)
    kind: str
    said: str
    voice: str
    expects: str | None
    seconds: float
    base: Reading
    tiny: Reading
    extra: dict[str, Any] = field(default_factory=dict)


def _bench(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def read(models: Any, audio: bytes, expects: str | None) -> Reading:
    cpu0 = time.process_time()
    t = models.recognise(audio, expects=expects)
    cpu_ms = 1000 * (time.process_time() - cpu0)
    return Reading(t.text, t.confidence, t.rejected, t.avg_logprob, t.decoded,
                   [(w.text, w.probability) for w in t.words], t.recovered_from, round(cpu_ms, 1))


def clips(only: str) -> list[tuple[str, str, str, str, str | None, bytes]]:
    """(label, kind, said, voice, expects, audio) of every clip to read."""
    from dialogs.nlu.evaluation import load_examples
    from voicebot.phone_speech import DEFAULT_VOICES, PhoneListener, parse_voices

    out: list[tuple[str, str, str, str, str | None, bytes]] = []
    if only in ("all", "dev"):
        listener = PhoneListener(lambda _: "")
        voices = parse_voices(",".join(DEFAULT_VOICES))
        for ex in load_examples(str(SPOKEN_DEV)):
            for v in voices:
                out.append(("dev", "+".join(ex.intents), ex.text, v.name, None, listener.audio(ex.text, v)))
    if only in ("all", "bad"):
        for label, kind, said, voice, expects, audio in _bench("stt_rejection").clips_to_decode():
            if label == "reject" or only == "all":  # its English clips: only in a full run (time)
                out.append((label, kind, said, voice, expects, audio))
        short = _bench("stt_short_foreign")
        listener = PhoneListener(lambda _: "")
        for lang, expects, text, meaning in short.rows("stt_short_foreign.tsv"):
            for rate in short.FOREIGN_RATES:
                voice = short.SyntheticVoice(f"{lang}-{rate}", "espeak", short.ESPEAK[lang], rate)
                audio = listener.audio(text, voice)
                if len(audio) / 32000 <= 2.0 and only != "all":
                    continue  # no rule reads a clip of 2 s or less again: only in a full run (time)
                out.append(("reject", f"short {lang} {meaning}", text, voice.name, expects or None,
                            audio))
    return out


def decode(only: str) -> list[Clip]:
    from voicebot.config import Settings
    from voicebot.models import load_piper, load_whisper
    from voicebot.pipeline.shared import SharedModels
    from voicebot.pipeline.stt_bias import SpeechBias

    base_settings = Settings()
    base_settings.models.workers = 1
    tiny_settings = Settings()
    tiny_settings.models.workers = 1
    tiny_settings.models.stt.model = "tiny.en"
    from dialogs.domain import load_domain

    bias = SpeechBias.from_domain(load_domain())
    voice = load_piper(base_settings)
    base = SharedModels(base_settings, load_whisper(base_settings), voice, bias)
    tiny = SharedModels(tiny_settings, load_whisper(tiny_settings), voice, bias)
    out = []
    try:
        todo = clips(only)
        for n, (label, kind, said, who, expects, audio) in enumerate(todo):
            # Alternate which model reads first, so neither always meets a warm cache.
            if n % 2:
                t = read(tiny, audio, expects)
                b = read(base, audio, expects)
            else:
                b = read(base, audio, expects)
                t = read(tiny, audio, expects)
            out.append(Clip(label, kind, said, who, expects, round(len(audio) / 32000, 2), b, t))
            if n % 50 == 0:
                print(f"{n}/{len(todo)}", file=sys.stderr, flush=True)
    finally:
        base.close()
        tiny.close()
    return out


# Scoring


def _why(rejected: str) -> str:
    return "language" if rejected.startswith("language") else rejected


def runs_tiny(c: Clip, rule: str, below: float, reasons: tuple[str, ...], min_s: float) -> bool:
    """Whether ``rule`` would run tiny.en on this clip (after base's reading)."""
    if c.seconds <= min_s:
        return False
    if rule == "c":
        return c.base.rejected is not None and _why(c.base.rejected) in reasons
    if rule in ("a", "b"):
        return c.base.rejected is None and (rule == "a" or c.base.confidence < below)
    return False


def rule_hypotheses(c: Clip, rule: str, below: float, reasons: tuple[str, ...], min_s: float) -> Any:
    """What the product would hand the dialog under ``rule``: (text, words, alternatives), or None if rejected."""
    from dialogs.nlu.nbest import Hypothesis

    b, t = c.base, c.tiny
    ran = runs_tiny(c, rule, below, reasons, min_s) and t.rejected is None
    if rule == "c":  # ``below``: the least mean token log probability of tiny.en's reading
        ran = ran and (t.avg_logprob or 0.0) >= below
    if b.rejected is not None:
        return (t.text, t.words, ()) if ran else None
    if ran:
        return b.text, b.words, (Hypothesis(b.text, b.avg_logprob or 0.0), Hypothesis(t.text, t.avg_logprob or 0.0))
    return b.text, b.words, ()


def score(loaded: list[Clip], rules: list[tuple[str, str, float, tuple[str, ...], float]]) -> dict[str, Any]:
    from dialogs.nlu.evaluation import evaluate, load_examples
    from dialogs.nlu.heard import HeardWord
    from dialogs.nlu.nbest import choose
    from voicebot.cli.common import DEV_TODAY
    from voicebot.cli.nlu import load_nlu
    from voicebot.stt_evaluation import acted_on

    today = date.fromisoformat(DEV_TODAY)
    nlu = load_nlu(None, None)
    examples = load_examples(str(SPOKEN_DEV))
    dev = [c for c in loaded if c.label == "dev"]
    bad = [c for c in loaded if c.label != "dev"]
    voices = list(dict.fromkeys(c.voice for c in dev))
    report: dict[str, Any] = {}
    for name, rule, below, reasons, min_s in rules:
        heard: list[str] = []
        words: list[tuple[HeardWord, ...]] = []
        changed = offered = 0
        wins: list[dict[str, Any]] = []
        extra_cpu = []
        for c in dev:
            got = rule_hypotheses(c, rule, below, reasons, min_s)
            ran_tiny = runs_tiny(c, rule, below, reasons, min_s)
            extra_cpu.append(c.tiny.cpu_ms if ran_tiny else 0.0)
            if got is None:
                heard.append("")
                words.append(())
                continue
            text, ws, alternatives = got
            if alternatives:
                offered += 1
                choice = choose(alternatives, lambda t: nlu.parse(t, today=today))
                if choice.index:
                    changed += 1
                    wins.append({"said": c.said, "voice": c.voice, "base": c.base.text, "tiny": c.tiny.text,
                                 "support": choice.support})
                    text, ws = c.tiny.text, []  # as the dialog does: another reading's words are not passed on
            elif text != c.base.text:
                changed += 1
                wins.append({"said": c.said, "voice": c.voice, "base": f"[{c.base.rejected}] {c.base.decoded}",
                             "tiny": c.tiny.text})
            heard.append(text)
            words.append(tuple(HeardWord(w, p) for w, p in ws))
        n_voices = len(voices)
        each = [examples[i // n_voices] for i in range(len(dev))]
        r_each = evaluate(nlu, each, today=today, max_errors=0, heard=heard, heard_words=words)
        turn_idx = [i * n_voices + (i % n_voices) for i in range(len(examples))]
        r_turn = evaluate(nlu, examples, today=today, max_errors=0, heard=[heard[i] for i in turn_idx],
                          heard_words=[words[i] for i in turn_idx])
        per_voice = {}
        for v in voices:
            idx = [i for i, c in enumerate(dev) if c.voice == v]
            r = evaluate(nlu, [each[i] for i in idx], today=today, max_errors=0, heard=[heard[i] for i in idx],
                         heard_words=[words[i] for i in idx])
            per_voice[v] = f"{100 * r.single['accuracy']:.0f}/{100 * r.multi['accuracy']:.0f}"
        # Bad input: what the dialog would act on under the rule.
        acted: list[dict[str, Any]] = []
        given_back = 0
        for c in bad:
            got = rule_hypotheses(c, rule, below, reasons, min_s)
            if got is None:
                continue
            text, _, alternatives = got
            if alternatives:
                text = choose(alternatives, lambda t: nlu.parse(t, today=today)).text
            if c.label == "speech":
                given_back += c.base.rejected is not None
                continue
            if acted_on(nlu, text, c.expects, today) and (c.base.rejected is not None or text != c.base.text):
                acted.append({"kind": c.kind, "voice": c.voice, "said": c.said, "text": text,
                              "base": f"[{c.base.rejected}] {c.base.decoded}" if c.base.rejected else c.base.text})
        report[name] = {
            "each_single": round(100 * r_each.single["accuracy"], 1), "each_multi": round(100 * r_each.multi["accuracy"], 1),
            "turn_single": round(100 * r_turn.single["accuracy"], 1), "turn_multi": round(100 * r_turn.multi["accuracy"], 1),
            "per_voice": per_voice, "offered": offered, "changed": changed,
            "extra_cpu_ms_mean": round(statistics.fmean(extra_cpu), 1),
            "bad_newly_acted_on": len(acted), "english_given_back": given_back,
            "acted": acted, "changes": wins,
        }
    base_cpu = [c.base.cpu_ms for c in dev]
    tiny_cpu = [c.tiny.cpu_ms for c in dev]
    report["cpu_ms"] = {"base_mean": round(statistics.fmean(base_cpu), 1), "tiny_mean": round(statistics.fmean(tiny_cpu), 1),
                        "base_p95": sorted(base_cpu)[int(0.95 * len(base_cpu))],
                        "tiny_p95": sorted(tiny_cpu)[int(0.95 * len(tiny_cpu))]}
    return report


RULES: list[tuple[str, str, float, tuple[str, ...], float]] = [
    ("base alone", "none", 0.0, (), 2.0),
    ("(a) always", "a", 1.0, (), 2.0),
    *[(f"(b) below {x}", "b", x, (), 2.0) for x in (0.5, 0.6, 0.7, 0.8, 0.9)],
    ("(c) unsure/no speech/echo/language", "c", -9.0, ("unsure", "no speech", "prompt echo", "language"), 2.0),
    ("(c) language only", "c", -9.0, ("language",), 2.0),
    ("(c) unsure/no speech/echo", "c", -9.0, ("unsure", "no speech", "prompt echo"), 2.0),
    *[(f"(c) all, logprob >= {x}", "c", x, ("unsure", "no speech", "prompt echo", "language"), 2.0)
      for x in (-1.2, -1.0, -0.9, -0.8, -0.75, -0.7)],
    ("(c) unsure/no speech/echo, logprob >= -0.8", "c", -0.8, ("unsure", "no speech", "prompt echo"), 2.0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save", default=None)
    parser.add_argument("--load", action="append", default=[])
    parser.add_argument("--only", choices=("all", "dev", "bad"), default="all")
    parser.add_argument("--details", action="store_true", help="List every changed reading and bad clip acted on.")
    parser.add_argument("--rules", default="", help="Score only the rules whose names contain one of these, "
                        "comma-separated.")
    parser.add_argument("--decode-only", action="store_true", help="Save the readings without scoring them.")
    args = parser.parse_args()
    if args.load:
        loaded = []
        for path in args.load:
            for c in json.loads(Path(path).read_text()):
                c["base"], c["tiny"] = Reading(**c["base"]), Reading(**c["tiny"])
                loaded.append(Clip(**c))
    else:
        loaded = decode(args.only)
        if args.save:
            Path(args.save).write_text(json.dumps([asdict(c) for c in loaded], indent=1))
        if args.decode_only:
            return
    wanted = [w for w in args.rules.split(",") if w]
    report = score(loaded, [r for r in RULES if not wanted or any(w in r[0] for w in wanted)])
    if not args.details:
        for r in report.values():
            if isinstance(r, dict):
                r.pop("acted", None)
                r.pop("changes", None)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
