"""How the recogniser's rejection rules (``voicebot.pipeline.shared.judge``) trade false rejects for false accepts.

Positives: English the bot must hear, none of it from a dev or held-out set of the NLU: every 7th example of the
domain's ``nlu.yaml`` spoken by the 6 test voices in turn, and the short answers, digits and numbers of
``tests/data/stt_short_dev.tsv`` (with the question they answer) by two voices each, all over G.711.
Negatives: what must give no words: silence, line hiss, white / pink / brown noise, mains hum, tones (beeps, DTMF,
dial, busy, ringback, fax), music-like signals (plucked chords, melodies, tremolo), coughs and breaths (sox), and
requests in German, French and Spanish (``tests/data/stt_rejection_foreign.tsv``, espeak-ng), each both as it is
(WebRTC) and through G.711.

Each clip is decoded once by the product's STT path (``SharedModels.recognise``); its measures (mean log probability,
no-speech probability, text, language and the language guess's probability) are kept, and every candidate set of
rules is judged on them with the real ``judge``. Prints JSON: the current rules' false rejects and false accepts
by kind, the best rules found, and the trade-off curve. These are the first reading's verdicts: the second looks
(recovery, the language check's decode in the other language, the short-clip language rule) are measured by
``--recoveries`` and ``benchmarks/stt_short_foreign.py``.

With ``--recoveries``, each clip the first decode rejected as "unsure" or "no speech" is decoded again by every
candidate second decode (``shared.Recovery``: BEAM/PROMPT on|off/WINDOW same|fit|full/PADDING s), through the
product's own recovery step; the report gives per candidate the false rejects recovered, the false accepts added
(and of them acted on) and the CPU ms added per rejected clip (process time).

    python benchmarks/stt_rejection.py [--save clips.json] [--load clips.json] [--config voicebot.yaml]
        [--recoveries 5/off/same/0,1/on/full/0]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audio import pcm
from audio.speech import espeak_ng
from voicebot.config import Settings, load_settings
from voicebot.phone_speech import DEFAULT_VOICES, PhoneListener, parse_voices, phone_line
from voicebot.pipeline import shared as stt
from voicebot.pipeline.shared import Recovery, RejectionRules, SharedModels, judge, recoverable
from voicebot.pipeline.stt_bias import SpeechBias
from voicebot.stt_evaluation import acted_on

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
DOMAIN_EVERY = 7  # every 7th nlu.yaml example: about 116 requests across all intents

# sox ``synth`` recipes, 16 kHz mono.
NOISES: dict[str, list[str]] = {
    "silence": ["synth", "2", "whitenoise", "vol", "0"],
    "hiss": ["synth", "2", "whitenoise", "vol", "0.005"],
    "white noise": ["synth", "3", "whitenoise", "vol", "0.2"],
    "pink noise": ["synth", "3", "pinknoise", "vol", "0.3"],
    "pink noise quiet": ["synth", "2", "pinknoise", "vol", "0.03"],
    "brown noise": ["synth", "3", "brownnoise", "vol", "0.5"],
    "hum": ["synth", "3", "sine", "50", "synth", "3", "sine", "mix", "150", "vol", "0.3"],
    "beep": ["synth", "0.5", "sine", "1000", "vol", "0.5"],
    "tones": ["synth", "0.4", "sine", "440", ":", "synth", "0.4", "sine", "660", ":", "synth", "0.4", "sine", "550",
              ":", "synth", "0.6", "sine", "880"],
    "dtmf": ["synth", "0.2", "sine", "697", "synth", "0.2", "sine", "mix", "1209", "pad", "0", "0.1", ":",
             "synth", "0.2", "sine", "770", "synth", "0.2", "sine", "mix", "1336", "pad", "0", "0.1", ":",
             "synth", "0.2", "sine", "852", "synth", "0.2", "sine", "mix", "1477", "vol", "0.5"],
    "dial tone": ["synth", "3", "sine", "350", "synth", "3", "sine", "mix", "440", "vol", "0.4"],
    "busy tone": ["synth", "0.5", "sine", "480", "synth", "0.5", "sine", "mix", "620", "pad", "0", "0.5", "repeat", "2",
                  "vol", "0.4"],
    "ringback": ["synth", "2", "sine", "440", "synth", "2", "sine", "mix", "480", "pad", "0", "1", "vol", "0.4"],
    "fax": ["synth", "3", "sine", "2100", "vol", "0.3"],
    "music chords": ["synth", "4", "pluck", "C4", "pluck", "E4", "pluck", "G4", "tremolo", "3", "vol", "0.5"],
    "music minor": ["synth", "1", "pluck", "A3", "synth", "1", "pluck", "mix", "C4", "synth", "1", "pluck", "mix",
                    "E4", "repeat", "3", "vol", "0.6"],
    "music melody": ["synth", "0.3", "sine", "523", ":", "synth", "0.3", "sine", "587", ":", "synth", "0.3", "sine",
                     "659", ":", "synth", "0.3", "sine", "698", ":", "synth", "0.6", "sine", "784", ":", "synth",
                     "0.3", "sine", "659", ":", "synth", "0.6", "sine", "523", "tremolo", "5", "vol", "0.5"],
    "music square": ["synth", "0.25", "square", "330", ":", "synth", "0.25", "square", "392", ":", "synth", "0.25",
                     "square", "494", ":", "synth", "0.5", "square", "440", "repeat", "2", "vol", "0.2"],
    "music reverb": ["synth", "3", "pluck", "D4", "synth", "3", "pluck", "mix", "F#4", "synth", "3", "pluck", "mix",
                     "A4", "reverb", "tremolo", "2", "vol", "0.5"],
    "cough": ["synth", "0.25", "brownnoise", "fade", "q", "0.01", "0.25", "0.15", "vol", "0.8", ":",
              "synth", "0.3", "whitenoise", "vol", "0"],
    "two coughs": ["synth", "0.2", "brownnoise", "fade", "q", "0.01", "0.2", "0.12", "vol", "0.9", ":",
                   "synth", "0.15", "whitenoise", "vol", "0", ":",
                   "synth", "0.3", "pinknoise", "fade", "q", "0.01", "0.3", "0.2", "vol", "0.7"],
    "sharp cough": ["synth", "0.15", "whitenoise", "lowpass", "2500", "fade", "q", "0.005", "0.15", "0.1",
                    "vol", "0.9", "pad", "0.3", "0.5"],
    "breath": ["synth", "0.9", "pinknoise", "lowpass", "1500", "fade", "t", "0.3", "0.9", "0.4", "vol", "0.2"],
    "breaths": ["synth", "0.8", "pinknoise", "bandpass", "800", "600", "fade", "t", "0.3", "0.8", "0.3",
                "vol", "0.3", "pad", "0", "0.6", "repeat", "2"],
    "sigh": ["synth", "1.2", "brownnoise", "highpass", "300", "fade", "t", "0.2", "1.2", "0.8", "vol", "0.4"],
    "knock": ["synth", "0.05", "brownnoise", "vol", "0.9", "pad", "0", "0.25", "repeat", "3"],
}
FOREIGN_RATES = (150, 175, 200)


@dataclass
class Clip:
    """One clip's decode and what the current rules made of it."""

    label: str  # "speech" (must be heard) or "reject"
    kind: str
    said: str
    voice: str
    seconds: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    language: str | None
    language_prob: float
    rejected: str | None
    english_prob: float = 0.0  # the bot's language's probability among Whisper's guesses
    cpu_ms: float = 0.0  # of the first decode (process time)
    # Per recovery candidate of a clip rejected as unsure / no speech: the reading it kept ("" if none) and CPU ms.
    recoveries: dict[str, dict[str, object]] = field(default_factory=dict)
    expects: str | None = None  # the answer the clip was heard as (its prompt's example answers; older files: None)


def sox(effect: list[str]) -> bytes:
    out = subprocess.run(["sox", "-n", "-r", str(pcm.SAMPLE_RATE), "-b", "16", "-c", "1", "-e", "signed", "-t", "raw",
                          "-", *effect], capture_output=True, check=True)
    return out.stdout


def language_guess(models: SharedModels, audio: bytes) -> tuple[str | None, float, float]:
    """Whisper's likeliest language of ``audio``, its probability and English's, over the window the live path
    uses."""
    import ctranslate2

    if not models.whisper.model.is_multilingual:
        return None, 0.0, 0.0
    samples = np.frombuffer(audio, dtype=np.int16).astype(np.float32) / 32768.0
    seconds = len(samples) / pcm.SAMPLE_RATE
    window_s = min(30.0, max(stt.MIN_WINDOW_S, math.ceil((seconds + stt.WINDOW_MARGIN_S) / stt.WINDOW_STEP_S)
                             * stt.WINDOW_STEP_S))
    frames = int(round(window_s * 100))
    features = models.whisper.feature_extractor(samples, padding=max(0, frames * 160 - len(samples)))[:, :frames]
    encoded = models.whisper.model.encode(
        ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None], dtype=np.float32)), to_cpu=False)
    guesses = models.whisper.model.detect_language(encoded)[0]
    english = next((float(p) for token, p in guesses if token == "<|en|>"), 0.0)
    return guesses[0][0].strip("<|>"), float(guesses[0][1]), english


def clips_to_decode() -> list[tuple[str, str, str, str, str | None, bytes]]:
    """(label, kind, said, voice, expects, audio) of every clip of the set."""
    from dialogs.domain import load_domain

    listener = PhoneListener(lambda _: "")
    voices = parse_voices(",".join(DEFAULT_VOICES))
    out: list[tuple[str, str, str, str, str | None, bytes]] = []
    examples = [(n, t) for n, i in load_domain().intents.items() for t in i.examples][::DOMAIN_EVERY]
    for k, (intent, text) in enumerate(examples):
        voice = voices[k % len(voices)]
        out.append(("speech", "request" if intent not in ("affirm", "deny", "thanks", "greet", "goodbye", "repeat")
                    else "short reply", text, voice.name, None, listener.audio(text, voice)))
    rows = [r for r in csv.reader((DATA / "stt_short_dev.tsv").read_text().splitlines(), delimiter="\t")
            if r and not r[0].startswith("#") and r[0] != "sentence"]
    for k, (kind, expects, text) in enumerate(rows):
        for j in range(2):
            voice = voices[(2 * k + j) % len(voices)]
            out.append(("speech", kind, text, voice.name, expects or None, listener.audio(text, voice)))
    for name, effect in NOISES.items():
        audio = sox(effect)
        out.append(("reject", name, "", "sox", None, audio))
        out.append(("reject", name, "", "sox G.711", None, phone_line(audio)))
    foreign = [r for r in csv.reader((DATA / "stt_rejection_foreign.tsv").read_text().splitlines(), delimiter="\t")
               if r and not r[0].startswith("#")]
    for k, (lang, text) in enumerate(foreign):
        samples, _ = espeak_ng(text, voice=lang, rate=FOREIGN_RATES[k % len(FOREIGN_RATES)],
                               sample_rate=pcm.SAMPLE_RATE)
        pad = np.zeros(pcm.SAMPLE_RATE // 5, dtype=np.float32)
        audio = (np.clip(np.concatenate([pad, samples, pad]), -1, 1) * 32767).astype(np.int16).tobytes()
        out.append(("reject", f"speech {lang}", text, lang, None, audio))
        out.append(("reject", f"speech {lang}", text, f"{lang} G.711", None, phone_line(audio)))
    return out


def parse_recovery(text: str) -> Recovery:
    beam, prompt, window, padding = text.split("/")
    return Recovery(int(beam), prompt == "on", window, float(padding))


def decode(models: SharedModels, recoveries: list[str]) -> list[Clip]:
    """Every clip decoded by ``models`` with no recovery, then each rejected one by every recovery candidate."""
    candidates = {name: SharedModels(models.settings, models.whisper, models.voice, models.bias,
                                     recovery=parse_recovery(name)) for name in recoveries}
    clips = []
    try:
        for label, kind, said, voice, expects, audio in clips_to_decode():
            cpu0 = time.process_time()
            t = models.recognise(audio, expects=expects)
            cpu_ms = 1000 * (time.process_time() - cpu0)
            language, probability, english = language_guess(models, audio)
            clip = Clip(label, kind, said, voice, round(len(audio) / 2 / pcm.SAMPLE_RATE, 2), t.decoded,
                        t.avg_logprob or 0.0, t.no_speech_prob or 0.0, language, probability, t.rejected,
                        round(english, 4), round(cpu_ms, 1), expects=expects)
            if recoverable(t.rejected):
                for name, candidate in candidates.items():
                    cpu0 = time.process_time()
                    again = candidate.recognise(audio, expects=expects)
                    # The first decode is deterministic and repeats: what is added is the rest.
                    added = 1000 * (time.process_time() - cpu0) - cpu_ms
                    clip.recoveries[name] = {"text": again.text, "recovered": again.recovered_from is not None,
                                             "avg_logprob": again.avg_logprob, "cpu_ms": round(added, 1)}
            clips.append(clip)
    finally:
        for candidate in candidates.values():
            candidate.close()
    return clips


def reason(clip: Clip) -> str:
    """Why the first reading was rejected, without the language's name ("language th" -> "language")."""
    return str(clip.rejected).split(" ")[0]


def recovery_report(clips: list[Clip], acted_on: Callable[[str], bool]) -> dict[str, object]:
    """Per candidate: false rejects recovered, false accepts added (and acted on), CPU ms added per rejected clip."""
    names = sorted({n for c in clips for n in c.recoveries})
    out: dict[str, object] = {}
    for name in names:
        tried = [c for c in clips if name in c.recoveries]
        kept = [c for c in tried if c.recoveries[name]["recovered"]]
        cpu = [float(c.recoveries[name]["cpu_ms"]) for c in tried]  # type: ignore[arg-type]
        speech_tried = [c for c in tried if c.label == "speech"]
        out[name] = {
            "rejected_clips": len(tried),
            "false_rejects_recovered": f"{sum(c.label == 'speech' for c in kept)}/{len(speech_tried)}",
            "false_accepts_added": sum(c.label == "reject" for c in kept),
            "false_accepts_added_acted_on": sum(c.label == "reject" and acted_on(str(c.recoveries[name]["text"]))
                                                for c in kept),
            "cpu_ms_per_rejected_clip": {"mean": round(float(np.mean(cpu)), 1) if cpu else 0.0,
                                         "p95": round(float(np.percentile(cpu, 95)), 1) if cpu else 0.0},
            "by_first_rejection": {
                why: {"false_rejects_recovered": f"{sum(c.label == 'speech' for c in kept if reason(c) == why)}"
                      f"/{sum(c.label == 'speech' for c in tried if reason(c) == why)}",
                      "false_accepts_added": sum(c.label == "reject" for c in kept if reason(c) == why)}
                for why in sorted({reason(c) for c in tried})},
            "recovered": [{"label": c.label, "kind": c.kind, "said": c.said, "voice": c.voice,
                           "first": c.text, "why": c.rejected, "now": c.recoveries[name]["text"]} for c in kept],
            "still_rejected_speech": [{"said": c.said, "voice": c.voice, "first": c.text, "why": c.rejected}
                                      for c in speech_tried if c not in kept],
        }
    return out


def domain_prompt() -> str:
    """The domain part of the prompt every clip was decoded after: what a decode must not echo."""
    from dialogs.domain import load_domain

    return SpeechBias.from_domain(load_domain()).prompt()


def verdict(clip: Clip, rules: RejectionRules, foreign_prob: float, language: str = "en", prompt: str = "") -> str | None:
    """Why ``rules`` reject ``clip`` (None: accepted), as the live path decides it; ``prompt``: the domain part of the
    prompt, for the echo rule ("" leaves the rule out, as before it existed), with the example answers the clip's prompt
    ended with."""
    foreign = (clip.language is not None and clip.language != language and clip.language_prob >= foreign_prob
               and clip.seconds > stt.SHORT_CLIP_S)
    answers = SpeechBias().example_answers(clip.expects, clip.seconds <= stt.SHORT_CLIP_S) if prompt else ""
    return judge(clip.text, clip.avg_logprob, clip.no_speech_prob, clip.language, foreign, rules, prompt,
                 answers).rejected


def score(clips: list[Clip], rules: RejectionRules, foreign_prob: float, prompt: str = "") -> tuple[int, int]:
    """(false rejects of speech, false accepts of what must be rejected)."""
    fr = sum(1 for c in clips if c.label == "speech" and verdict(c, rules, foreign_prob, prompt=prompt) is not None)
    fa = sum(1 for c in clips if c.label == "reject" and verdict(c, rules, foreign_prob, prompt=prompt) is None)
    return fr, fa


GRID = {
    "no_speech_prob": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    "logprob_no_speech": (0.0, -0.3, -0.5, -0.7, -1.0, -1.3),
    "logprob_guess": (-1.0, -1.2, -1.4, -1.6, -1.8, -2.0, -2.5, -9.0),
    "min_confidence": (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35),
    "logprob_foreign": (-0.1, -0.3, -0.5, -0.7, -0.9, -1.2),
}
FOREIGN_PROBS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.01)


def sweep(clips: list[Clip], acts: list[bool], prompt: str) -> list[dict[str, object]]:
    """The Pareto front of the grid's rule sets over (false rejects, false accepts the NLU would act on), fewest
    such accepts first, each with its count of all false accepts (each checked with ``judge``)."""
    speech = np.array([c.label == "speech" for c in clips])
    acting = np.array(acts)
    lp = np.array([c.avg_logprob for c in clips])
    nsp = np.array([c.no_speech_prob for c in clips])
    lang_p = np.array([c.language_prob if c.language not in (None, "en") and c.seconds > stt.SHORT_CLIP_S else -1.0
                       for c in clips])
    conf = np.array([judge(c.text, c.avg_logprob, c.no_speech_prob, rules=RejectionRules(min_confidence=0,
                     logprob_guess=-99, no_speech_prob=2)).confidence for c in clips])
    # What no threshold changes: one of Whisper's inventions, or a repetitive decode.
    fixed = np.array([judge(c.text, c.avg_logprob, c.no_speech_prob, rules=RejectionRules(
        no_speech_prob=2, logprob_guess=-99, min_confidence=-1), prompt=prompt,
        answers=SpeechBias().example_answers(c.expects, c.seconds <= stt.SHORT_CLIP_S) if prompt else ""
    ).rejected is not None for c in clips])
    best: dict[int, tuple[int, int, dict[str, float]]] = {}
    for values in itertools.product(*GRID.values(), FOREIGN_PROBS):
        a, b, g, m, f, fp = values
        rejected = fixed | ((nsp > a) & (lp < b)) | (lp < g) | (conf < m) | ((lang_p >= fp) & (lp < f))
        fr = int((rejected & speech).sum())
        fa_act = int((~rejected & ~speech & acting).sum())
        fa = int((~rejected & ~speech).sum())
        if fa_act not in best or (fr, fa) < best[fa_act][:2]:
            best[fa_act] = (fr, fa, {"foreign_language_prob": fp, **dict(zip(GRID, values[:-1], strict=True))})
    front: list[dict[str, object]] = []
    for fa_act in sorted(best):
        fr, fa, params = best[fa_act]
        if front and fr >= front[-1]["false_rejects"]:  # type: ignore[operator]
            continue
        fp = float(params.pop("foreign_language_prob"))  # type: ignore[arg-type]
        rules = RejectionRules(**params)  # type: ignore[arg-type]
        assert score(clips, rules, fp, prompt) == (fr, fa), (rules, fp)  # the fast check agrees with judge
        front.append({"false_rejects": fr, "false_accepts_acted_on": fa_act, "false_accepts": fa,
                      "foreign_language_prob": fp, **asdict(rules)})
    return front


def by_kind(clips: list[Clip], rules: RejectionRules, foreign_prob: float, label: str, prompt: str) -> dict[str, str]:
    kinds: dict[str, list[int]] = {}
    for c in clips:
        if c.label == label:
            wrong = (verdict(c, rules, foreign_prob, prompt=prompt) is not None) == (label == "speech")
            kinds.setdefault(c.kind, [0, 0])[0] += wrong
            kinds[c.kind][1] += 1
    return {k: f"{w}/{n}" for k, (w, n) in kinds.items()}


def asked_about(clips: list[Clip], nlu: Any) -> dict[str, object]:
    """The rejected-as-another-language clips to reject whose reading the dialog would ask about, with the request."""
    from dialogs.manager.doubt import proposed_request

    bar = Settings().dialog.confirm_foreign_guess_from
    language = [c for c in clips if c.label == "reject" and (c.rejected or "").startswith("language ")]
    asked = [(c, proposed_request(nlu.parse(c.text), bar)) for c in language]
    return {"bar": bar, "rejected_as_language": len(language),
            "asked": [{"said": c.said, "voice": c.voice, "text": c.text, "request": hit.name}
                      for c, hit in asked if hit is not None]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--save", default=None, help="Write the decoded clips to this JSON file.")
    parser.add_argument("--load", default=None, help="Judge the clips of this JSON file instead of decoding.")
    parser.add_argument("--recoveries", default="", help="Second decodes to try on rejected clips, comma-separated "
                        "BEAM/PROMPT on|off/WINDOW same|fit|full/PADDING_S, e.g. 5/off/same/0.")
    args = parser.parse_args()
    if args.load:
        clips = [Clip(**c) for c in json.loads(Path(args.load).read_text())]
    else:
        settings = load_settings(args.config) if args.config else Settings()
        settings.models.workers = 1
        settings.models.stt.recover_rejected = False  # the first decode alone; candidates are tried one by one
        models = SharedModels.load(settings)
        try:
            clips = decode(models, [r for r in args.recoveries.split(",") if r])
        finally:
            models.close()
        if args.save:
            Path(args.save).write_text(json.dumps([asdict(c) for c in clips], indent=1))
    from dialogs.domain import load_domain
    from dialogs.nlu import NLU

    nlu = NLU.train(load_domain())
    # A false accept matters when the NLU would act on its words: a request, not "no" or "thank you".
    acts = [c.label == "reject" and acted_on(nlu, c.text) for c in clips]
    current = RejectionRules()
    prompt = domain_prompt()
    fr, fa = score(clips, current, stt.FOREIGN_LANGUAGE_PROB, prompt)
    fa_act = sum(1 for c, a in zip(clips, acts, strict=True)
                 if a and verdict(c, current, stt.FOREIGN_LANGUAGE_PROB, prompt=prompt) is None)
    speech = sum(c.label == "speech" for c in clips)
    report = {
        "clips": {"speech": speech, "reject": len(clips) - speech},
        "current": {"false_rejects": fr, "false_accepts_acted_on": fa_act, "false_accepts": fa, "foreign_language_prob": stt.FOREIGN_LANGUAGE_PROB,
                    **asdict(current),
                    "false_rejects_by_kind": by_kind(clips, current, stt.FOREIGN_LANGUAGE_PROB, "speech", prompt),
                    "false_accepts_by_kind": by_kind(clips, current, stt.FOREIGN_LANGUAGE_PROB, "reject", prompt)},
        "without_echo_rule": dict(zip(("false_rejects", "false_accepts"), score(clips, current, stt.FOREIGN_LANGUAGE_PROB),
                                       strict=True), false_accepts_acted_on=sum(
            1 for c, a in zip(clips, acts, strict=True) if a and verdict(c, current, stt.FOREIGN_LANGUAGE_PROB) is None)),
        "pareto": sweep(clips, acts, prompt),
        "recovery": recovery_report(clips, lambda text: acted_on(nlu, text)),
        "first_decode_cpu_ms_mean": round(float(np.mean([c.cpu_ms for c in clips])), 1),
        # Clips to reject that the decode rejected as another language and whose English reading the dialog would ask
        # about (dialog.confirm_foreign_guess_from: "Sorry, I may not have caught that. Just to check: ...?").
        "asked_about": asked_about(clips, nlu),
        "false_rejects": [{"said": c.said, "voice": c.voice, "text": c.text, "avg_logprob": c.avg_logprob,
                           "no_speech_prob": c.no_speech_prob, "language": c.language,
                           "language_prob": round(c.language_prob, 3),
                           "why": verdict(c, current, stt.FOREIGN_LANGUAGE_PROB, prompt=prompt)}
                          for c in clips if c.label == "speech" and verdict(c, current, stt.FOREIGN_LANGUAGE_PROB, prompt=prompt)],
        "false_accepts": [{"kind": c.kind, "acted_on": a, "voice": c.voice, "text": c.text, "avg_logprob": c.avg_logprob,
                           "no_speech_prob": c.no_speech_prob, "language": c.language,
                           "language_prob": round(c.language_prob, 3)}
                          for c, a in zip(clips, acts, strict=True)
                          if c.label == "reject" and not verdict(c, current, stt.FOREIGN_LANGUAGE_PROB, prompt=prompt)],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
