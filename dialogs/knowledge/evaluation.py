"""Measure retrieval on labelled questions: right entry, or a correct "I don't know".

The file is TSV with a header line: ``question<TAB>entry id``; the id ``-`` marks a question the knowledge
base does not answer (the right reply is "I don't know").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogs.knowledge.retrieval import Retriever

UNKNOWN = "-"


class QuestionSetError(ValueError):
    """A labelled file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class LabelledQuestion:
    text: str
    entry: str  # an entry id, or UNKNOWN
    line: int


@dataclass
class KnowledgeReport:
    n: int
    accuracy: float  # right entry or correct "I don't know", over all rows
    known: dict[str, float]  # rows the knowledge base answers: n, accuracy, wrong_entry, said_unknown
    unknown: dict[str, float]  # rows it does not: n, accuracy (said "I don't know")
    threshold: float
    ms_per_query: float
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": self.accuracy, "known": self.known, "unknown": self.unknown,
                "threshold": self.threshold, "ms_per_query": self.ms_per_query, "errors": self.errors}


def load_questions(path: str | Path, known_ids: set[str] | None = None) -> list[LabelledQuestion]:
    """Read the TSV. Raises :class:`QuestionSetError` naming file and line for a malformed row or an id the
    knowledge base does not have (when ``known_ids`` is given)."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionSetError(f"{p}: cannot read: {exc}") from None
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 2 or not cols[0].strip() or not cols[1].strip():
            raise QuestionSetError(f"{p}: line {n}: expected 'question<TAB>entry id' (or '-' for no answer)")
        entry = cols[1].strip()
        if known_ids is not None and entry != UNKNOWN and entry not in known_ids:
            raise QuestionSetError(f"{p}: line {n}: '{entry}' is not an entry of the knowledge base")
        rows.append(LabelledQuestion(cols[0].strip(), entry, n))
    if not rows:
        raise QuestionSetError(f"{p}: no questions (the first line is the header)")
    return rows


def evaluate(
    retriever: Retriever,
    questions: list[LabelledQuestion],
    *,
    progress: Callable[[int], None] | None = None,
) -> KnowledgeReport:
    """Look up every question; ``progress(1)`` is called after each (for a progress bar)."""
    right_known = wrong_entry = said_unknown = right_unknown = 0
    errors: list[dict[str, Any]] = []
    spent = 0.0
    for q in questions:
        t0 = time.perf_counter()
        verdict = retriever.lookup(q.text)
        spent += time.perf_counter() - t0
        best = verdict.best
        got = verdict.match.entry.id if verdict.match is not None else UNKNOWN
        if got == q.entry:
            if q.entry == UNKNOWN:
                right_unknown += 1
            else:
                right_known += 1
        else:
            if q.entry != UNKNOWN:
                if got == UNKNOWN:
                    said_unknown += 1
                else:
                    wrong_entry += 1
            errors.append({"line": q.line, "question": q.text, "expected": q.entry, "got": got,
                           "best": best.entry.id if best else None,
                           "score": round(best.score, 3) if best else None})
        if progress is not None:
            progress(1)
    n_known = sum(1 for q in questions if q.entry != UNKNOWN)
    n_unknown = len(questions) - n_known
    return KnowledgeReport(
        n=len(questions),
        accuracy=(right_known + right_unknown) / len(questions),
        known={"n": n_known, "accuracy": right_known / n_known if n_known else 0.0,
               "wrong_entry": wrong_entry, "said_unknown": said_unknown},
        unknown={"n": n_unknown, "accuracy": right_unknown / n_unknown if n_unknown else 0.0},
        threshold=retriever.threshold,
        ms_per_query=1000 * spent / len(questions),
        errors=errors,
    )


def format_report(report: KnowledgeReport, encoder: str, show_errors: int = 20) -> str:
    k, u = report.known, report.unknown
    lines = [
        f"questions: {report.n}   encoder: {encoder}   threshold (least probability): {report.threshold:.2f}",
        f"accuracy (right entry or correct \"I don't know\"): {report.accuracy:.1%}",
        f"  answerable ({k['n']:.0f}): {k['accuracy']:.1%} right entry, {k['wrong_entry']:.0f} wrong entry, "
        f"{k['said_unknown']:.0f} said \"I don't know\"",
        f"  not answerable ({u['n']:.0f}): {u['accuracy']:.1%} said \"I don't know\"",
        f"time per query: {report.ms_per_query:.1f} ms",
    ]
    if report.errors and show_errors > 0:
        lines.append(f"errors (first {min(show_errors, len(report.errors))} of {len(report.errors)}):")
        for e in report.errors[:show_errors]:
            lines.append(f"  line {e['line']}: {e['question']!r}: expected {e['expected']}, got {e['got']} "
                         f"(best {e['best']} {e['score']})")
    return "\n".join(lines)
