"""Measure the NLU on labelled utterances: intent-set exact match, per-intent precision/recall, slot F1.

The file format is TSV with a header line: ``utterance<TAB>intents[<TAB>slots]``. Intents are separated by
commas, ``+`` or ``#`` (as in MixSNIPS). The optional slots column holds ``slot=value`` pairs separated by ``;``
(dates as ISO ``YYYY-MM-DD``); slot F1 is computed over the rows that have the column.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from dialogs.nlu.heard import HeardWord
from dialogs.nlu.parser import NLU


class DatasetError(ValueError):
    """A labelled file that cannot be read; the message names the file and line."""


@dataclass
class Example:
    text: str
    intents: list[str]
    slots: set[tuple[str, str]] | None = None  # None: the row has no slot labels
    line: int = 0


@dataclass
class Report:
    n: int
    exact_match: float
    single: dict[str, float]  # {"n": ..., "accuracy": ...} for rows with one gold intent
    multi: dict[str, float]  # rows with two or more gold intents
    per_intent: dict[str, dict[str, float]]
    slots: dict[str, float] | None
    ms_per_utterance: float
    errors: list[dict[str, Any]] = field(default_factory=list)
    # the most frequent wrong intent sets: {"gold": [...], "predicted": [...], "count": n}
    confusions: list[dict[str, Any]] = field(default_factory=list)
    # accuracy per band of the parse's confidence (its least confident intent): is a score of 0.7 right 70 %?
    reliability: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n, "exact_match": self.exact_match, "single": self.single, "multi": self.multi,
            "per_intent": self.per_intent, "slots": self.slots, "ms_per_utterance": self.ms_per_utterance,
            "confusions": self.confusions, "reliability": self.reliability, "errors": self.errors,
        }


# Confidence bands of the reliability check (lower bounds); the last band is [0.9, 1].
BANDS = (0.0, 0.3, 0.45, 0.6, 0.75, 0.9)


def _split_labels(field_text: str) -> list[str]:
    return [x.strip() for x in field_text.replace("#", ",").replace("+", ",").split(",") if x.strip()]


def load_examples(path: str | Path) -> list[Example]:
    """Read a labelled TSV file. Raises :class:`DatasetError` with file and line on a malformed row."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{p}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{p}: cannot read: {exc}") from None
    if not lines:
        raise DatasetError(f"{p}: empty file (expected a header line and rows: utterance<TAB>intents)")
    out: list[Example] = []
    for no, line in enumerate(lines[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 2 or not cols[1].strip():
            raise DatasetError(f"{p}:{no}: expected 'utterance<TAB>intents', got {line[:80]!r}")
        slots = None
        if len(cols) >= 3:
            slots = set()
            for pair in filter(None, (x.strip() for x in cols[2].split(";"))):
                if "=" not in pair:
                    raise DatasetError(f"{p}:{no}: slot {pair!r} is not slot=value")
                k, v = pair.split("=", 1)
                slots.add((k.strip(), v.strip()))
        out.append(Example(cols[0], _split_labels(cols[1]), slots, no))
    if not out:
        raise DatasetError(f"{p}: no rows after the header line")
    return out


def _value_text(v: Any) -> str:
    return v.isoformat() if isinstance(v, date) else str(v)


def evaluate(
    nlu: NLU, examples: list[Example], *, today: date, max_errors: int = 50, heard: Sequence[str] | None = None,
    heard_words: Sequence[Sequence[HeardWord]] | None = None, asked: Sequence[str | None] | None = None,
    also: Sequence[str | None] | None = None,
) -> Report:
    """Parse every example and compare with its labels. ``today`` resolves relative dates ("yesterday").

    ``heard``: what to parse instead of each example's text (one per example, e.g. the recogniser's
    transcript of it spoken); errors then show both. ``heard_words``: the recogniser's words of each transcript
    with their probabilities (empty where unknown), handed to the parser. ``asked``: where not None, the one
    request the dialog asks the caller about instead of acting on the transcript (speech rejected as another
    language, doubt.check_foreign_reading); the caller's "yes" completes it, so it is counted as the prediction.
    ``also``: where not None, a request the dialog asks about beside those it acts on ("Did you also want ...?",
    also_wanted.also_request), counted as predicted too (a row it is not said in is then wrong)."""
    if heard is not None and len(heard) != len(examples):
        raise ValueError(f"{len(heard)} transcripts for {len(examples)} examples")
    if heard_words is not None and len(heard_words) != len(examples):
        raise ValueError(f"{len(heard_words)} word lists for {len(examples)} examples")
    if asked is not None and len(asked) != len(examples):
        raise ValueError(f"{len(asked)} asked requests for {len(examples)} examples")
    if also is not None and len(also) != len(examples):
        raise ValueError(f"{len(also)} requests asked about too for {len(examples)} examples")
    confused: Counter[tuple[tuple[str, ...], tuple[str, ...]]] = Counter()
    bands = [[0, 0] for _ in BANDS]
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    counts = {"single": [0, 0], "multi": [0, 0]}
    slot_tp = slot_fp = slot_fn = 0
    slot_rows = 0
    errors: list[dict[str, Any]] = []
    elapsed = 0.0
    for i, ex in enumerate(examples):
        text = ex.text if heard is None else heard[i]
        t0 = time.perf_counter()
        result = nlu.parse(text, today=today, words=heard_words[i] if heard_words is not None else ())
        elapsed += time.perf_counter() - t0
        gold = set(ex.intents)
        names = [h.name for h in result.intents]
        if asked is not None and asked[i] is not None:
            names = [str(asked[i])]
        elif also is not None and also[i] is not None:
            names = [*names, str(also[i])]
        pred = set(names)
        ok = gold == pred
        confidence = min(h.confidence for h in result.intents)
        band = max(k for k, low in enumerate(BANDS) if confidence >= low)
        bands[band][0] += 1
        bands[band][1] += ok
        if not ok:
            confused[(tuple(sorted(gold)), tuple(sorted(pred)))] += 1
        kind = "single" if len(gold) == 1 else "multi"
        counts[kind][0] += 1
        counts[kind][1] += ok
        for name in pred & gold:
            tp[name] += 1
        for name in pred - gold:
            fp[name] += 1
        for name in gold - pred:
            fn[name] += 1
        slot_ok = True
        if ex.slots is not None:
            slot_rows += 1
            got = {(k, _value_text(v)) for h in result.intents for k, v in h.slots.items()}
            gold_slots = {(k, v.lower()) for k, v in ex.slots}
            got_cmp = {(k, v.lower()) for k, v in got}
            slot_tp += len(got_cmp & gold_slots)
            slot_fp += len(got_cmp - gold_slots)
            slot_fn += len(gold_slots - got_cmp)
            slot_ok = got_cmp == gold_slots
        if (not ok or not slot_ok) and len(errors) < max_errors:
            errors.append({
                "line": ex.line, "text": ex.text, **({"row": i, "heard": text} if heard is not None else {}),
                "gold": ex.intents, "predicted": names,
                "negated": result.negated, "segments": result.segments,
                **({"doubted": [h.name for h in result.doubted]} if result.doubted else {}),
                **({"gold_slots": sorted(ex.slots), "slots": sorted(
                    (k, _value_text(v)) for h in result.intents for k, v in h.slots.items())}
                   if ex.slots is not None and not slot_ok else {}),
            })
    per_intent: dict[str, dict[str, float]] = {}
    for name in sorted(set(tp) | set(fp) | set(fn)):
        p = tp[name] / (tp[name] + fp[name]) if tp[name] + fp[name] else 0.0
        r = tp[name] / (tp[name] + fn[name]) if tp[name] + fn[name] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        per_intent[name] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
                            "support": tp[name] + fn[name]}
    slots = None
    if slot_rows:
        sp = slot_tp / (slot_tp + slot_fp) if slot_tp + slot_fp else 0.0
        sr = slot_tp / (slot_tp + slot_fn) if slot_tp + slot_fn else 0.0
        slots = {"rows": slot_rows, "precision": round(sp, 4), "recall": round(sr, 4),
                 "f1": round(2 * sp * sr / (sp + sr), 4) if sp + sr else 0.0}
    n = len(examples)

    def acc(kind: str) -> dict[str, float]:
        total, right = counts[kind]
        return {"n": total, "accuracy": round(right / total, 4) if total else 0.0}

    return Report(
        n=n,
        exact_match=round((counts["single"][1] + counts["multi"][1]) / n, 4) if n else 0.0,
        single=acc("single"),
        multi=acc("multi"),
        per_intent=per_intent,
        slots=slots,
        ms_per_utterance=round(1000 * elapsed / n, 2) if n else 0.0,
        errors=errors,
        confusions=[{"gold": list(g), "predicted": list(p), "count": c} for (g, p), c in confused.most_common(10)],
        reliability=[
            {"band": f"{low:.2f}-{BANDS[k + 1] if k + 1 < len(BANDS) else 1.0:.2f}", "n": total,
             "accuracy": round(right / total, 4) if total else None}
            for k, (low, (total, right)) in enumerate(zip(BANDS, bands, strict=True))
        ],
    )


def format_report(report: Report, *, show_errors: int = 20) -> str:
    """A plain-text report for a terminal."""
    lines = [
        f"utterances: {report.n}",
        f"intent-set exact match: {report.exact_match:.1%}",
        f"  single-intent: {report.single['accuracy']:.1%} of {report.single['n']:.0f}",
        f"  multi-intent:  {report.multi['accuracy']:.1%} of {report.multi['n']:.0f}",
    ]
    if report.slots:
        s = report.slots
        lines.append(f"slots ({s['rows']:.0f} rows): precision {s['precision']:.1%} recall {s['recall']:.1%} "
                     f"F1 {s['f1']:.1%}")
    lines.append(f"time per utterance: {report.ms_per_utterance:.1f} ms")
    lines.append("")
    lines.append(f"{'intent':<22}{'precision':>10}{'recall':>10}{'f1':>8}{'support':>9}")
    for name, m in report.per_intent.items():
        lines.append(f"{name:<22}{m['precision']:>10.1%}{m['recall']:>10.1%}{m['f1']:>8.1%}{m['support']:>9.0f}")
    if report.confusions:
        lines.append("")
        lines.append("worst confusions (gold -> predicted, count):")
        for c in report.confusions:
            lines.append(f"  {'+'.join(c['gold'])} -> {'+'.join(c['predicted'])}: {c['count']}")
    if report.reliability:
        lines.append("")
        lines.append("reliability (parse confidence band: accuracy of n):")
        for b in report.reliability:
            acc = "-" if b["accuracy"] is None else f"{b['accuracy']:.1%}"
            lines.append(f"  {b['band']}: {acc} of {b['n']}")
    if report.errors and show_errors:
        lines.append("")
        lines.append(f"errors (first {min(show_errors, len(report.errors))}):")
        for e in report.errors[:show_errors]:
            extra = f"  slots {e['slots']} != {e['gold_slots']}" if "gold_slots" in e else ""
            said = f"{e['text']!r} heard {e['heard']!r}" if "heard" in e else repr(e["text"])
            lines.append(f"  line {e['line']}: {said}: gold {e['gold']} got {e['predicted']}{extra}")
    return "\n".join(lines)
