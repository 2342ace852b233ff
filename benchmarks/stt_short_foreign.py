"""Whether short answers in other languages come out as English the dialog acts on, and what a language check on
short clips would cost in English short answers.

Negatives: ``tests/data/stt_short_foreign.tsv`` (yes / no, thanks, greetings and digits in German, French, Spanish
and Italian, espeak-ng at two speeds, over G.711), each heard after the question its row names. Positives: the
digit, number and answer rows of ``tests/data/stt_short_dev.tsv`` by the 6 test voices, over G.711. Each clip goes
through the product's STT path (``SharedModels.recognise``, recovery included); Whisper's language guesses over the
same window are kept, and every candidate short-clip language rule (``shared.LanguageRules``) is judged on them with
the real ``judge`` and ``sounds_foreign``. "Acted on": after a yes/no question the NLU reads yes or no, after an
order-number question the words hold a digit, else the NLU reads a request. Prints JSON.

    python benchmarks/stt_short_foreign.py [--save clips.json] [--load clips.json] [--config voicebot.yaml]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audio import pcm
from voicebot.config import Settings, load_settings
from voicebot.phone_speech import DEFAULT_VOICES, PhoneListener, SyntheticVoice, parse_voices
from voicebot.pipeline import shared as stt
from voicebot.pipeline.shared import LanguageRules, RejectionRules, SharedModels, judge, sounds_foreign
from voicebot.stt_evaluation import NOTHING, dialog_reading

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
FOREIGN_RATES = (150, 190)
ESPEAK = {"de": "de", "fr": "fr-fr", "es": "es", "it": "it"}


@dataclass
class Clip:
    label: str  # "speech" (English the bot must hear) or "reject"
    lang: str
    said: str
    meaning: str  # yes / no / digits / "-" (nothing to act on)
    voice: str
    expects: str | None
    seconds: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    rejected: str | None
    guesses: list[tuple[str, float]]  # Whisper's language guesses, likeliest first (the first 5)


def rows(name: str) -> list[list[str]]:
    return [r for r in csv.reader((DATA / name).read_text().splitlines(), delimiter="\t")
            if r and not r[0].startswith("#")]


def language_guesses(models: SharedModels, audio: bytes) -> list[tuple[str, float]]:
    """Whisper's language guesses over the window and padding the live path gives ``audio``."""
    samples = np.frombuffer(audio, dtype=np.int16).astype(np.float32) / 32768.0
    if len(samples) / pcm.SAMPLE_RATE <= stt.SHORT_CLIP_S:
        samples = np.concatenate([np.zeros(int(models.short.lead_s * pcm.SAMPLE_RATE), np.float32), samples,
                                  np.zeros(int(models.short.trail_s * pcm.SAMPLE_RATE), np.float32)])
    seconds = len(samples) / pcm.SAMPLE_RATE
    window_s = min(30.0, max(stt.MIN_WINDOW_S, math.ceil((seconds + stt.WINDOW_MARGIN_S) / stt.WINDOW_STEP_S)
                             * stt.WINDOW_STEP_S))
    encoded = models._encode(samples, window_s)
    return [(token.strip("<|>"), round(float(p), 4)) for token, p in models.whisper.model.detect_language(encoded)[0][:5]]


def decode(models: SharedModels) -> list[Clip]:
    listener = PhoneListener(lambda _: "")
    clips: list[Clip] = []
    todo: list[tuple[str, str, str, str, SyntheticVoice, str | None]] = []  # label, lang, said, meaning, voice, expects
    for lang, expects, text, meaning in rows("stt_short_foreign.tsv"):
        for rate in FOREIGN_RATES:
            todo.append(("reject", lang, text, meaning, SyntheticVoice(f"{lang}-{rate}", "espeak", ESPEAK[lang], rate),
                         expects or None))
    voices = parse_voices(",".join(DEFAULT_VOICES))
    for kind, expects, text in rows("stt_short_dev.tsv"):
        if kind != "sentence":
            for voice in voices:
                todo.append(("speech", "en", text, text, voice, expects or None))
    for label, lang, said, meaning, voice, wanted in todo:
        audio = listener.audio(said, voice)
        t = models.recognise(audio, expects=wanted)
        clips.append(Clip(label, lang, said, meaning, voice.name, wanted, round(len(audio) / 2 / pcm.SAMPLE_RATE, 2),
                          t.decoded, t.avg_logprob or 0.0, t.no_speech_prob or 0.0, t.rejected,
                          language_guesses(models, audio)))
    return clips


def verdict(clip: Clip, rules: LanguageRules) -> str | None:
    foreign = sounds_foreign(clip.guesses, "en", clip.seconds <= stt.SHORT_CLIP_S, rules)
    if clip.rejected not in (None, "unsure") and not clip.rejected.startswith("language"):
        return clip.rejected  # no speech / repetitive: no language rule changes it
    short = clip.seconds <= stt.SHORT_CLIP_S
    lp = RejectionRules(logprob_foreign=rules.short_logprob_below) if short else RejectionRules()
    return judge(clip.text, clip.avg_logprob, clip.no_speech_prob, clip.guesses[0][0], foreign, lp).rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--save", default=None)
    parser.add_argument("--load", default=None)
    args = parser.parse_args()
    if args.load:
        clips = [Clip(**c) for c in json.loads(Path(args.load).read_text())]
        for c in clips:
            c.guesses = [tuple(g) for g in c.guesses]  # type: ignore[misc]
    else:
        settings = load_settings(args.config) if args.config else Settings()
        settings.models.workers = 1
        models = SharedModels.load(settings)
        try:
            clips = decode(models)
        finally:
            models.close()
        if args.save:
            Path(args.save).write_text(json.dumps([asdict(c) for c in clips], indent=1))
    from dialogs.domain import load_domain
    from dialogs.manager.doubt import proposed_request
    from dialogs.nlu import NLU

    nlu = NLU.train(load_domain())
    acted = {id(c): dialog_reading(nlu, c.text, c.expects) for c in clips}
    bar = Settings().dialog.confirm_foreign_guess_from

    def score(rules: LanguageRules) -> dict[str, int]:
        out = {"english_rejected": 0, "foreign_accepted": 0, "foreign_acted_on": 0, "foreign_acted_on_wrongly": 0}
        for c in clips:
            rejected = verdict(c, rules) is not None
            if c.label == "speech":
                out["english_rejected"] += rejected
            elif not rejected:
                out["foreign_accepted"] += 1
                if acted[id(c)] != NOTHING:
                    out["foreign_acted_on"] += 1
                    out["foreign_acted_on_wrongly"] += acted[id(c)] != c.meaning
        return out

    current = LanguageRules()
    off = LanguageRules(short_top_prob=2.0)
    grid = []
    for top, en, lp in itertools.product((0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), (0.02, 0.05, 0.1, 0.2, 0.3, 1.0),
                                         (0.0, -0.2, -0.4, -0.6, -99.0)):
        rules = LanguageRules(short_top_prob=top, short_english_below=en, short_logprob_below=lp)
        grid.append({**asdict(rules), **score(rules)})
    front: list[dict[str, object]] = []
    for g in sorted(grid, key=lambda g: (g["foreign_acted_on"], g["english_rejected"], g["foreign_accepted"])):
        if not front or g["english_rejected"] < front[-1]["english_rejected"]:  # type: ignore[operator]
            front.append(g)
    report = {
        "clips": {"english": sum(c.label == "speech" for c in clips), "foreign": sum(c.label == "reject" for c in clips)},
        "no_short_language_check": score(off),
        "current": {**asdict(current), **score(current)},
        "pareto": front,
        "foreign_acted_on": [{"said": c.said, "voice": c.voice, "expects": c.expects, "text": c.text,
                              "reading": acted[id(c)], "guesses": c.guesses[:3], "avg_logprob": c.avg_logprob}
                             for c in clips if c.label == "reject" and verdict(c, current) is None
                             and acted[id(c)] != NOTHING],
        # Foreign answers rejected as another language whose English reading the dialog would ask about
        # (dialog.confirm_foreign_guess_from); an answer to a question (expects) is never asked about.
        "asked_about": [{"said": c.said, "voice": c.voice, "expects": c.expects, "text": c.text, "request": hit.name}
                        for c in clips if c.label == "reject" and (c.rejected or "").startswith("language ")
                        and (hit := proposed_request(nlu.parse(c.text), bar)) is not None and c.expects is None],
        "english_rejected": [{"said": c.said, "voice": c.voice, "text": c.text, "why": verdict(c, current),
                              "guesses": c.guesses[:3], "avg_logprob": c.avg_logprob}
                             for c in clips if c.label == "speech" and verdict(c, current) is not None],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
