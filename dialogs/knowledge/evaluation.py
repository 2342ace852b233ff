"""Measure knowledge answers on labelled questions: right entry, or a correct "I don't know".

The file is TSV with a header line: ``question<TAB>entry id``; the id ``-`` marks a question the knowledge
base does not answer (the right reply is anything but an entry's answer: "I don't know", or the flow of a request).

Two ways to ask: the retriever alone (:func:`evaluate`), or whatever stands between the caller and the answer
(:func:`evaluate_heard` with a function that says what the caller hears: in a call the NLU sees a question first
and may send it to a request's flow instead of the knowledge base).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialogs.knowledge.retrieval import Retriever

if TYPE_CHECKING:
    from dialogs.engine import DialogEngine

UNKNOWN = "-"
# What the caller hears in reply: an entry's answer, a request's flow, or neither ("I don't know", "sorry?").
ANSWER, REQUEST, NOTHING = "answer", "request", "nothing"


class QuestionSetError(ValueError):
    """A labelled file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class LabelledQuestion:
    text: str
    entry: str  # an entry id, or UNKNOWN
    line: int


@dataclass(frozen=True)
class Heard:
    """What the caller hears in reply to one question."""

    entries: tuple[str, ...] = ()  # the knowledge entries answered, in order
    requests: tuple[str, ...] = ()  # the requests whose flow started (or that the bot asks to confirm)
    said: str = ""  # the reply or the retriever's reason, for the list of errors
    best: str | None = None  # the nearest entry, whatever its score
    score: float | None = None
    # A request offered after the answer ("... Would you like me to help with the return now?"): not yet its flow, so
    # the row is scored on the answer given; counted apart in the report.
    offered: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return ANSWER if self.entries else REQUEST if self.requests else NOTHING


@dataclass
class KnowledgeReport:
    n: int
    accuracy: float  # right entry or correct "I don't know", over all rows
    known: dict[str, float]  # rows the knowledge base answers: n, accuracy, wrong_entry, said_unknown
    unknown: dict[str, float]  # rows it does not: n, accuracy (said "I don't know")
    threshold: float
    ms_per_query: float
    errors: list[dict[str, Any]] = field(default_factory=list)
    # How often each reply kind (ANSWER, REQUEST, NOTHING) was heard, for answerable ("known") and other rows
    heard: dict[str, dict[str, int]] = field(default_factory=dict)
    # How many answers ended with a request offered, for answerable ("known") and other rows
    offered: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "accuracy": self.accuracy, "known": self.known, "unknown": self.unknown,
                "threshold": self.threshold, "ms_per_query": self.ms_per_query, "heard": self.heard,
                "offered": self.offered, "errors": self.errors}


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
    """Look up every question with the retriever alone; ``progress(1)`` is called after each (for a progress bar)."""

    def hear(text: str) -> Heard:
        verdict = retriever.lookup(text)
        best = verdict.best
        return Heard((verdict.match.entry.id,) if verdict.match is not None else (), (), verdict.reason,
                     best.entry.id if best else None, best.score if best else None)

    return evaluate_heard(hear, questions, threshold=retriever.threshold, progress=progress)


def evaluate_heard(
    hear: Callable[[str], Heard],
    questions: list[LabelledQuestion],
    *,
    threshold: float,
    progress: Callable[[int], None] | None = None,
) -> KnowledgeReport:
    """Score what the caller hears: an answerable question is right when its entry is answered, any other when
    no entry is (a request's flow is right for a request). A request offered after the answer is no flow yet: the
    row is scored on the answer (and counted in ``offered``). ``threshold`` is only reported."""
    right_known = wrong_entry = said_unknown = right_unknown = 0
    errors: list[dict[str, Any]] = []
    heard: dict[str, dict[str, int]] = {"known": {k: 0 for k in (ANSWER, REQUEST, NOTHING)},
                                        "unknown": {k: 0 for k in (ANSWER, REQUEST, NOTHING)}}
    offered = {"known": 0, "unknown": 0}
    spent = 0.0
    for q in questions:
        t0 = time.perf_counter()
        reply = hear(q.text)
        spent += time.perf_counter() - t0
        heard["known" if q.entry != UNKNOWN else "unknown"][reply.kind] += 1
        offered["known" if q.entry != UNKNOWN else "unknown"] += bool(reply.offered)
        if q.entry == UNKNOWN:
            right = not reply.entries
            right_unknown += right
        else:
            right = q.entry in reply.entries
            right_known += right
            if not right:
                if reply.entries:
                    wrong_entry += 1
                else:
                    said_unknown += 1
        if not right:
            got = ",".join(reply.entries) or (f"request {','.join(reply.requests)}" if reply.requests else UNKNOWN)
            errors.append({"line": q.line, "question": q.text, "expected": q.entry, "got": got,
                           "best": reply.best, "score": round(reply.score, 3) if reply.score is not None else None,
                           "said": reply.said})
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
        threshold=threshold,
        ms_per_query=1000 * spent / len(questions),
        errors=errors,
        heard=heard,
        offered=offered,
    )


def heard_in_a_call(engine: DialogEngine) -> Callable[[str], Heard]:
    """Ask each question as the first turn of a new call (anonymous caller, after the greeting), as a caller
    would: the NLU, the knowledge base and the dialog decide together what is said."""
    from dialogs.engine import Turn
    from dialogs.manager.state import Expect

    def hear(text: str) -> Heard:
        session = engine.new_call(channel="eval")
        session.start()
        reply = session.handle(Turn(text=text))
        st = session.state
        requests = [t.intent for t in ([st.current] if st.current else []) + st.agenda + st.finished]
        requests += [h.name for h in st.doubt]  # "just to check: you want to ...?" is the request's flow too
        if st.handed_off and not requests:
            requests.append("handoff")
        # the whole question's nearest entry, a hint for the list of errors (the dialog may have asked by clause)
        nearest = engine.knowledge.retriever.rank(text, 1) if engine.knowledge is not None else []
        # "... Would you like me to help with the return now?": asked, not started (the caller has not said yes)
        offered = (st.also.name,) if session.knowledge_answered and st.also is not None \
            and st.expect is Expect.ALSO_WANTED else ()
        return Heard(tuple(session.knowledge_answered), tuple(dict.fromkeys(requests)), reply.text,
                     nearest[0].entry.id if nearest else None, nearest[0].score if nearest else None, offered)

    return hear


def format_report(report: KnowledgeReport, encoder: str, show_errors: int = 20, *, through: str = "retriever") -> str:
    """The report in words; ``through`` names what the questions went through (the retriever, or the NLU too)."""
    k, u = report.known, report.unknown
    hk, hu = report.heard.get("known", {}), report.heard.get("unknown", {})
    lines = [
        f"questions: {report.n}   through: {through}   encoder: {encoder}   "
        f"threshold (least probability): {report.threshold:.2f}",
        f"accuracy (right entry, or no entry where none answers): {report.accuracy:.1%}",
        f"  answerable ({k['n']:.0f}): {k['accuracy']:.1%} right entry, {k['wrong_entry']:.0f} wrong entry, "
        f"{k['said_unknown']:.0f} no entry ({hk.get(REQUEST, 0)} of them a request's flow)",
        f"  not answerable ({u['n']:.0f}): {u['accuracy']:.1%} no entry: {hu.get(NOTHING, 0)} \"I don't know\", "
        f"{hu.get(REQUEST, 0)} a request's flow; {hu.get(ANSWER, 0)} answered an entry",
        *([f"  answers that then offered a request (scored on the answer): {report.offered.get('known', 0)} "
           f"answerable, {report.offered.get('unknown', 0)} not"] if any(report.offered.values()) else []),
        f"time per query: {report.ms_per_query:.1f} ms",
    ]
    if report.errors and show_errors > 0:
        lines.append(f"errors (first {min(show_errors, len(report.errors))} of {len(report.errors)}):")
        for e in report.errors[:show_errors]:
            lines.append(f"  line {e['line']}: {e['question']!r}: expected {e['expected']}, got {e['got']} "
                         f"(best {e['best']} {e['score']})")
    return "\n".join(lines)
