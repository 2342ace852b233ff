"""``voicebot eval spoken FILE``: the NLU measured on speech, from TTS voices through G.711 and the live STT path."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from dialogs.nlu.classifier import classifier_view
from dialogs.nlu.heard import HeardWord
from dialogs.nlu.normalize import normalize
from voicebot.cli.common import (
    config_option,
    dev_today_option,
    domain_option,
    errors_option,
    json_option,
    models_or_exit,
    parse_today,
    settings_or_exit,
)
from voicebot.cli.nlu import load_nlu

if TYPE_CHECKING:
    from dialogs.nlu import NLU
    from dialogs.nlu.evaluation import Example
    from voicebot.phone_speech import SyntheticVoice


# What went wrong in a row whose intents were misread, in the order they are tested (docs/understanding.md).
MISS_KINDS = ("rejected audio", "wrong intent", "intent lost, a telling word left", "intent lost", "extra intent")
# A word or word pair of the transcript "tells" a lost intent when the classifier, given it alone, is this sure of it.
TELLING_PROB = 0.5


def miss_kind(model: NLU, gold: set[str], predicted: set[str], heard: str) -> str:
    """Which of :data:`MISS_KINDS` a misread row is: nothing heard; an intent said was lost and another one read
    instead; an intent lost although a word or pair of words of the transcript still names it (the classifier alone
    reads it as that intent with at least TELLING_PROB); an intent lost with no such word; or an intent too many."""
    tokens = normalize(heard).tokens
    if not tokens:
        return MISS_KINDS[0]
    missing, extra = gold - predicted, predicted - gold - {"out_of_scope"}
    if missing and extra:
        return MISS_KINDS[1]
    if not missing:
        return MISS_KINDS[4]
    grams = [tokens[k:k + n] for n in (1, 2) for k in range(len(tokens) - n + 1)]
    classes = list(map(str, model.classifier.classes))
    probs = model.classifier.predict_proba([classifier_view(g) for g in grams])
    told = {classes[int(row.argmax())] for row in probs if row.max() >= TELLING_PROB}
    return MISS_KINDS[2] if missing & told else MISS_KINDS[3]


@contextmanager
def progress(items: list[Any], label: str) -> Iterator[Any]:
    """``click.progressbar`` on stderr when it is a terminal; the plain items otherwise (logs, pipes)."""
    if sys.stderr.isatty():
        with click.progressbar(items, label=label, file=sys.stderr) as bar:
            yield bar
    else:
        yield items


def assign_voices(examples: list[Example], voices: list[SyntheticVoice], each: bool) -> list[tuple[Example, SyntheticVoice]]:
    """Every example with every voice (``each``), or the voices taken in turn, one per example."""
    if each:
        return [(ex, v) for ex in examples for v in voices]
    return [(ex, voices[i % len(voices)]) for i, ex in enumerate(examples)]


def load_transcripts(path: str, spoken: list[tuple[Example, SyntheticVoice]]) -> list[dict[str, Any]]:
    """The rows of a ``--save`` file, checked to be the same utterances by the same voices as ``spoken``
    (raises ``ValueError`` saying where they differ)."""
    with open(path, encoding="utf-8") as fh:
        rows = json.load(fh)
    if not isinstance(rows, list) or len(rows) != len(spoken):
        raise ValueError(f"holds {len(rows) if isinstance(rows, list) else 'no'} transcripts, not {len(spoken)}: "
                         "save it with the same file, --voices and --each")
    for i, (row, (ex, voice)) in enumerate(zip(rows, spoken, strict=True)):
        if row.get("said") != ex.text or row.get("voice") != voice.name:
            raise ValueError(f"transcript {i + 1} is of {row.get('said')!r} by {row.get('voice')}, "
                             f"not {ex.text!r} by {voice.name}")
    return rows


@click.command("spoken")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--voices", "voice_names", default=None,
              help="Comma-separated test voices (default: en-us,en-gb,en-sc,en-029,en-nyc,piper).")
@click.option("--each", is_flag=True, help="Speak every utterance with every voice (default: voices in turn).")
@json_option
@dev_today_option
@errors_option
@domain_option
@click.option("--second-pass-below", "second_pass_below", type=click.FloatRange(0.0, 1.0), default=None,
              help="Override models.stt.second_pass_below (0: no second pass).")
@click.option("--save", "save_path", type=click.Path(dir_okay=False), default=None,
              help="Write what the recogniser heard (texts, confidences, word probabilities) to this JSON file.")
@click.option("--load", "load_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Parse the transcripts of a --save file instead of speaking and recognising again.")
@click.option("--without-word-probabilities", "without_words", is_flag=True,
              help="Parse the transcripts without the recogniser's word probabilities (as typed text).")
@click.option("--confirm-foreign-guess-from", "foreign_from", type=click.FloatRange(0.0, 1.0), default=None,
              help="Override dialog.confirm_foreign_guess_from (0: speech rejected as another language stays unheard).")
@click.option("--also-ask-from", "also_from", type=click.FloatRange(0.0, 1.0), default=None,
              help="Override dialog.also_ask_from (0: an unsure second request is never asked about).")
@click.option("--without-checks", "without_checks", is_flag=True,
              help="Count the parse alone, not the requests the dialog asks about (in a turn with none understood, "
                   "or an unsure second one beside a sure one).")
@config_option
def eval_spoken(file: str, voice_names: str | None, each: bool, as_json: bool, today_text: str, show_errors: int,
                domain_path: str | None, second_pass_below: float | None, save_path: str | None,
                load_path: str | None, without_words: bool, foreign_from: float | None, also_from: float | None,
                without_checks: bool, config_path: str | None) -> None:
    """Speak every utterance of FILE with synthetic voices (espeak-ng accents, Piper), send it through a
    G.711 mu-law 8 kHz line and the bot's own speech recogniser, and measure the NLU on what it heard.

    FILE is the TSV of `voicebot eval nlu` (`utterance<TAB>intent1+intent2`, header line first). Reports
    intent-set accuracy for single- and multi-intent rows, per voice, the worst confusions and accuracy per
    confidence band. Synthesised audio is cached in the system temp directory.

    Speech rejected only as another language counts as its reading in the bot's language where the dialog would ask
    whether that was meant (dialog.confirm_foreign_guess_from; the caller's "yes" completes it), as unheard otherwise.
    Likewise a transcript in which the NLU found no request counts as the request the dialog asks about
    ("Just to check: ...?", dialog.confirm_intent_from), if any, and a second request scored just under the NLU
    threshold beside a sure one counts as that request too ("Did you also want ...?", dialog.also_ask_from), right
    only if it was said (--without-checks: as parsed)."""
    from dialogs.manager.also_wanted import also_request
    from dialogs.manager.doubt import proposed_request, unsure_request
    from dialogs.nlu.evaluation import DatasetError, evaluate, format_report, load_examples
    from dialogs.nlu.nbest import choose
    from voicebot.phone_speech import DEFAULT_VOICES, PhoneListener, parse_voices

    today = parse_today(today_text)
    try:
        voices = parse_voices(voice_names or ",".join(DEFAULT_VOICES))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--voices") from None
    try:
        examples = load_examples(file)
    except DatasetError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    settings = settings_or_exit(config_path)
    if second_pass_below is not None:
        settings.models.stt.second_pass_below = second_pass_below
    model = load_nlu(config_path, domain_path)
    spoken = assign_voices(examples, voices, each)
    heard: list[str] = []
    words: list[tuple[HeardWord, ...]] = []
    foreign: list[str] = []  # the reading of speech rejected only as another language, "" for the others
    stt_ms: list[float] = []
    stt_cpu_ms: list[float] = []  # CPU of the process: comparable between runs on a busy machine
    second_passes = changed = 0
    saved: list[dict[str, Any]] = []
    if load_path is not None:
        try:
            saved = load_transcripts(load_path, spoken)
        except ValueError as exc:
            click.echo(f"{load_path}: {exc}", err=True)
            sys.exit(2)
        heard = [row["heard"] for row in saved]
        words = [tuple(HeardWord(t, p) for t, p in row["words"]) for row in saved]
        foreign = [row.get("decoded", "") if (row.get("rejected") or "").startswith("language ") else ""
                   for row in saved]
        stt_ms = [row["stt_ms"] for row in saved]
        stt_cpu_ms = [row["stt_cpu_ms"] for row in saved]
    else:
        models = models_or_exit(settings)
        listener = PhoneListener(models.transcribe)
        try:
            with progress(spoken, "speaking, recognising") as rows:
                for ex, voice in rows:
                    audio = listener.audio(ex.text, voice)
                    t0, cpu0 = time.perf_counter(), time.process_time()
                    transcript = models.recognise(audio)
                    stt_ms.append(1000 * (time.perf_counter() - t0))
                    stt_cpu_ms.append(1000 * (time.process_time() - cpu0))
                    text, heard_as = transcript.text, transcript.words
                    if transcript.alternatives:
                        # As the dialog stage does: the reading the NLU is surest of (its words are the first's only).
                        second_passes += 1
                        text = choose(transcript.alternatives, lambda t: model.parse(t, today=today)).text
                        changed += text != transcript.text
                        heard_as = heard_as if text == transcript.text else ()
                    heard.append(text)
                    words.append(heard_as)
                    foreign.append(transcript.foreign_reading)
                    saved.append({"said": ex.text, "voice": voice.name, "heard": text,
                                  "confidence": transcript.confidence, "rejected": transcript.rejected,
                                  "decoded": transcript.decoded if transcript.rejected else "",
                                  "words": [[w.text, w.probability] for w in heard_as],
                                  "stt_ms": stt_ms[-1], "stt_cpu_ms": stt_cpu_ms[-1]})
        finally:
            models.close()
        if save_path is not None:
            with open(save_path, "w", encoding="utf-8") as fh:
                json.dump(saved, fh, indent=1)
    if without_words:
        words = [() for _ in words]
    sure_from = settings.dialog.confirm_foreign_guess_from if foreign_from is None else foreign_from
    asked: list[dict[str, Any]] = []
    proposals: list[str | None] = [None] * len(foreign)
    for i, reading in enumerate(foreign):
        hit = proposed_request(model.parse(reading, today=today), sure_from) if reading else None
        if hit is not None:
            # As the dialog does: it asks whether the caller meant this request, and "yes" completes it.
            heard[i], proposals[i] = reading, hit.name
            asked.append({"row": i, "said": spoken[i][0].text, "voice": spoken[i][1].name, "heard": reading,
                          "asked": hit.name, "confidence": round(hit.confidence, 3)})
    foreign_summary = {"confirm_foreign_guess_from": sure_from, "rejected": sum(bool(r) for r in foreign),
                       "asked": len(asked), "rows": asked}
    checked: list[dict[str, Any]] = []
    for i, text in enumerate(heard):
        if without_checks or proposals[i] is not None or not text:
            continue
        hit = unsure_request(model.parse(text, today=today, words=() if without_words else words[i]),
                             model.domain, settings.dialog.confirm_intent_from, model.threshold)
        if hit is not None:
            # As the dialog does: "Just to check: ...?", and the caller's "yes" starts the request.
            proposals[i] = hit.name
            checked.append({"row": i, "said": spoken[i][0].text, "voice": spoken[i][1].name, "heard": text,
                            "asked": hit.name, "confidence": round(hit.confidence, 3),
                            "right": list(spoken[i][0].intents) == [hit.name]})
    checks_summary = {"confirm_intent_from": settings.dialog.confirm_intent_from, "asked": len(checked),
                      "right": sum(c["right"] for c in checked), "rows": checked}
    also_from = settings.dialog.also_ask_from if also_from is None else also_from
    also: list[str | None] = [None] * len(heard)
    also_rows: list[dict[str, Any]] = []
    for i, text in enumerate(heard):
        if without_checks or proposals[i] is not None or not text:
            continue
        hit = also_request(model.parse(text, today=today, words=() if without_words else words[i]), model.domain,
                           also_from, model.threshold)
        if hit is not None:
            # As the dialog does: "Did you also want ...?" once the sure requests are done; "yes" adds it.
            also[i] = hit.name
            also_rows.append({"row": i, "said": spoken[i][0].text, "voice": spoken[i][1].name, "heard": text,
                              "asked": hit.name, "confidence": round(hit.confidence, 3),
                              "right": hit.name in spoken[i][0].intents})
    also_summary = {"also_ask_from": also_from, "asked": len(also_rows),
                    "right": sum(a["right"] for a in also_rows), "rows": also_rows}
    said = [ex for ex, _ in spoken]
    limit = max(show_errors, 0) if not as_json else 1000
    report = evaluate(model, said, today=today, max_errors=len(said), heard=heard, heard_words=words, asked=proposals,
                      also=also)
    misses: dict[str, dict[str, dict[str, int]]] = {"single": {}, "multi": {}}
    for e in report.errors:
        gold, got = set(e["gold"]), set(e["predicted"])
        if gold != got:
            e["kind"] = miss_kind(model, gold, got, heard[e["row"]])
            per_voice = misses["single" if len(gold) == 1 else "multi"].setdefault(e["kind"], {})
            per_voice[spoken[e["row"]][1].name] = per_voice.get(spoken[e["row"]][1].name, 0) + 1
    report.errors = report.errors[:limit]
    by_voice: dict[str, Any] = {}
    for voice in voices:
        idx = [i for i, (_, v) in enumerate(spoken) if v == voice]
        if idx:
            r = evaluate(model, [said[i] for i in idx], today=today, max_errors=0, heard=[heard[i] for i in idx],
                         heard_words=[words[i] for i in idx], asked=[proposals[i] for i in idx],
                         also=[also[i] for i in idx])
            by_voice[voice.name] = {"n": r.n, "single": r.single, "multi": r.multi}
    ordered = sorted(stt_ms)
    stt = {"median_ms": round(statistics.median(stt_ms), 1) if stt_ms else 0.0,
           "mean_ms": round(statistics.fmean(stt_ms), 1) if stt_ms else 0.0,
           "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1) if stt_ms else 0.0,
           "cpu_mean_ms": round(statistics.fmean(stt_cpu_ms), 1) if stt_cpu_ms else 0.0,
           "utterances": len(stt_ms), "second_passes": second_passes, "second_pass_changed": changed}
    if as_json:
        out = report.to_dict()
        out["by_voice"] = by_voice
        out["stt"] = stt
        out["foreign_readings"] = foreign_summary
        out["checks"] = checks_summary
        out["also_asked"] = also_summary
        out["misses"] = misses
        for e in out["errors"]:
            e["voice"] = spoken[e["row"]][1].name
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(format_report(report, show_errors=show_errors))
    click.echo("")
    click.echo(f"speech recognition: median {stt['median_ms']:.0f} ms, mean {stt['mean_ms']:.0f} ms, "
               f"p95 {stt['p95_ms']:.0f} ms (CPU mean {stt['cpu_mean_ms']:.0f} ms) per utterance; second passes {second_passes} "
               f"(reading changed in {changed})")
    click.echo(f"rejected as another language with a reading: {foreign_summary['rejected']}; asked about (reading "
               f"sure from {sure_from}): {len(asked)}")
    for a in asked:
        click.echo(f"  {a['voice']:<8} {a['said']!r} heard {a['heard']!r}: {a['asked']} {a['confidence']:.2f}")
    if not without_checks:
        click.echo(f"no request understood, the dialog asks about one: {len(checked)} "
                   f"({checks_summary['right']} the request said)")
        for c in checked:
            click.echo(f"  {c['voice']:<8} {c['said']!r} heard {c['heard']!r}: {c['asked']} {c['confidence']:.2f}")
        click.echo(f"an unsure second request beside a sure one, asked about: {len(also_rows)} "
                   f"({also_summary['right']} the request said)")
        for a in also_rows:
            click.echo(f"  {a['voice']:<8} {a['said']!r} heard {a['heard']!r}: {a['asked']} {a['confidence']:.2f}")
    names = [v.name for v in voices]
    click.echo("misread rows by kind, per voice (" + ", ".join(names) + "):")
    for rows_kind, kinds in misses.items():
        for kind in (k for k in MISS_KINDS if k in kinds):
            counts = " ".join(f"{kinds[kind].get(n, 0):>3}" for n in names)
            click.echo(f"  {rows_kind:<6} {kind:<34} {counts}  (all {sum(kinds[kind].values())})")
    for name, r in by_voice.items():
        click.echo(f"  {name:<12} single {r['single']['accuracy']:.1%} of {r['single']['n']:.0f}, "
                   f"multi {r['multi']['accuracy']:.1%} of {r['multi']['n']:.0f}")

