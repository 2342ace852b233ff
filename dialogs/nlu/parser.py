"""The NLU entry point: one utterance in, an ordered list of intents with their slots out.

How an utterance is parsed:

1. :func:`~dialogs.nlu.normalize.normalize` makes ASR text canonical (number words to digits, fillers out).
2. :func:`~dialogs.nlu.entities.find_entities` finds values (order numbers, e-mails, dates ...).
3. The segmenter proposes cut points; every span between two cut points is classified, and a dynamic
   programme picks the segmentation that maximises, per clause, the log-probability of its label plus the
   (weighted) log-probabilities that each atomic piece inside it gives that same label, minus a cost per
   clause. A sentence with one request scores best as one clause; in "update my address and where is my
   order" the piece "where is my order" votes strongly against change_address, so two clauses win.
   A complaint ("this is the third time, it is ridiculous": :func:`~dialogs.nlu.segmenter.complaint_spans`) is
   a clause of its own that names no request, so a request beside it is found on its own words; so is a value that
   opens the turn before a connector or a punctuation mark ("94107 | and where is my order 45281", "94107, | where
   is my order 45281": the answer to the bot's question, :func:`~dialogs.nlu.segmenter.answer_spans`; no clause
   reaches across it), whose value fills the request only when it names none. A fragment the
   recogniser's punctuation cut off (:func:`~dialogs.nlu.segmenter.is_fragment`: "there's a payment on my statement,
   | i don't recognise", "i want my parcel | and to my new flat") is no clause: its cut point is dropped, so it is
   read with the clause before it, unless that clause is a dialog act ("hi, i moved"). An object after its verb is
   no clause ("return | my order"), and neither is the verb alone before it ("return | my order and refund the
   delivery charge" is "return my order" | "refund the delivery charge").
4. Clauses that open with a negation cue ("I don't want to cancel") are classified without the cue and
   reported in ``negated`` instead of ``intents``.
5. A short clause that only holds a slot value of a neighbouring request ("the charger is faulty, so I
   want to return it") is absorbed by that request. The clause after an answer that names no request on its own
   words but refers to the answer's order number ("45281 | and where is it") is read with the number in the
   pronoun's place ("where is order 45281"); so is a clause naming no request that holds an order number without the
   word "order" ("where is 45281"), when its other words lean to the request that reading names.
6. Entities fill each intent's slots by slot type, preferring those in the intent's own clause; a date
   fills a slot named like ``date_of_birth`` only after "born"/"birth" words, other date slots otherwise.
7. With a knowledge base, the classifier also learns the ``faq`` act from its questions, but the segmentation and
   the requests see only the other labels (renormalised), so the requests are understood as without one. The
   ``faq`` act comes in a second stage: each chosen clause, and each leading or trailing part of it at a cut
   point ("what's your return policy | and I want to return my kettle"), is a public question if the full
   classifier calls it ``faq``, it has at least FAQ_MIN_WORDS words, holds no value of the clause's request
   ("how can I send back order 33451" is a return), and the knowledge base's best entry for it scores at least
   FAQ_MIN_SCORE (FAQ_OVER_REQUEST_SCORE when the clause was a request). Letting ``faq`` compete with the
   requests over-calls public questions and shifts the other labels (89 % exact match on the dev set, not 96 %).
8. "please" on its own next to a request is politeness, not a yes.
9. A yes or a no after a request or another answer in the same turn is not an answer ("the login page keeps paying
   my password, it wrong"; "yes, no, add"): answers open a turn. So does a request to repeat ("I can't, I didn't,
   and I want to cancel my account" is no "say again").
10. With the recogniser's words (``parse(words=...)``, :mod:`dialogs.nlu.heard`), each intent says how surely its
    clause was heard (its surest word's probability); beside the clause heard most surely, a request whose clause's
    words all scored below UNSURE_CLAUSE adds no intent: it goes to ``doubted`` ("Cous, my order, refund, ouch, yeah." is an
    order check, not a return too). Typed text has no words and parses as without this step.
11. A clause the segmentation chose whose best request scored under the threshold is no intent; it is kept in
    ``below`` (the dialog may ask about it beside a sure request, ``dialogs.manager.also_wanted``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import numpy as np

from dialogs.domain.schema import DIALOG_ACTS, Domain, Intent
from dialogs.jsonable import jsonable
from dialogs.nlu.classifier import (
    Features,
    IntentClassifier,
    LabelsWithout,
    classifier_view,
    fitted_classifier,
)
from dialogs.nlu.entities import Entity, extract, find_entities, is_birth_context
from dialogs.nlu.heard import HeardWord, span_probability, token_probabilities
from dialogs.nlu.normalize import Normalized, normalize
from dialogs.nlu.segmenter import (
    Clause,
    answer_spans,
    candidate_cuts,
    fragment_cuts,
    make_clause,
    requestless_spans,
    weak_cuts,
)

OUT_OF_SCOPE = "out_of_scope"
DENY = "deny"
FAQ = "faq"  # the act of a clause that asks a public question the knowledge base answers
# Stage two of the faq act (chosen on tests/data/nlu_dev.tsv and the knowledge conversations): below this
# knowledge score a question-like clause is more often a request or chat that merely shares a topic with an entry.
FAQ_MIN_SCORE = 0.6
# ... and when the classifier's other choice is a request, the question must be nearer still to an entry's.
FAQ_OVER_REQUEST_SCORE = 0.75
FAQ_MIN_WORDS = 3  # "can i", "my email": fragments of a request, not questions
POLITENESS = frozenset({"please"})
# A clause after an answer may refer to its value with a pronoun ("45281 and where is it"): the value's kind, as a
# noun that says it before the value ("order 45281").
PRONOUNS = frozenset({"it", "that", "this"})
REFERRED = {"order_number": "order"}
# ... or without that noun ("where is 45281"): so many words beside the value make it a request, not an answer.
NAMED_MIN_WORDS = 2
ANSWERS = frozenset({"affirm", "deny"})
# Acts that refer to what the bot just said, so they open a turn: after a request or an answer they are misheard.
TURN_OPENERS = ANSWERS | {"repeat"}
# Cost of one more clause in the segmentation (in log-probability): a split must buy more certainty.
CLAUSE_COST = 1.5
# How much each atomic piece's own classification counts towards the label of its clause.
PIECE_WEIGHT = 0.5
# Above this many candidate cut points, clauses may span at most MAX_SPAN of them (bounded work on long input).
MAX_CUTS = 14
# A clause of at most this many words that holds a slot value of a neighbouring request may be absorbed by it.
ABSORB_MAX_WORDS = 6
# A clause that names no request ("this is the third time it is ridiculous i want a manager") may still end or
# start with one: a sub-clause at a cut point is taken when the classifier is this sure of it on its own.
RESCUE_MIN_PROB = 0.6
MAX_SPAN = 5
# Verbs that take the object after them: one alone before a weak cut ("return | my order") is no clause.
OBJECT_VERBS = frozenset({"track", "update", "change", "cancel", "reset", "return", "check", "send", "start", "close",
                          "stop", "put", "transfer", "connect", "refund"})
# A clause keeps its own request when its words without the value say so this surely on their own: "my password
# | does not work" is a password request even beside a return that wants a reason.
KEEP_OWN_PROB = 0.9
# A request's clause whose surest word the recogniser gave less than this probability was guessed: beside a clause
# heard more surely it adds no intent (step 10). Chosen on one saved run of the spoken dev set, every voice (612
# clips): 0.4-0.6 alike (single 83.3 %, multi 72.0-72.8 %, against 82.8 / 71.5 % without); the clause's mean word
# probability instead of its surest word, or doubting dialog acts ("thanks", "yes") too, cost multi-intent turns.
UNSURE_CLAUSE = 0.5


class Questions(Protocol):
    """A knowledge base as the NLU sees it: the questions it answers, and whether it answers one clause."""

    def examples(self) -> list[str]:
        """How callers ask the questions it answers (the ``faq`` act's training examples)."""
        ...

    def score(self, text: str) -> float:
        """How near ``text`` is to its topics (cosine with the nearest entry), whether or not it has the answer: a
        question about them that it cannot answer is still a public question, answered "I don't know"."""
        ...


@dataclass
class IntentHit:
    """One recognised intent; ``slots`` is keyed by the domain's slot names and holds only found values."""

    name: str
    confidence: float
    slots: dict[str, Any] = field(default_factory=dict)
    clause: str = ""  # the (normalised) words of its clause
    # How sure the recogniser was of the clause's words (its surest word's probability); None for typed text.
    heard: float | None = None


@dataclass
class ParseResult:
    """Everything the NLU understood of one utterance.

    ``intents`` are in spoken order and never empty (``out_of_scope`` when nothing was recognised);
    ``scores`` holds the top classifier probabilities for the whole utterance; ``segments`` the chosen
    clauses (normalised); ``negated`` the intents the caller said they do not want. Entity offsets refer
    to ``normalized``.
    """

    text: str
    normalized: str
    intents: list[IntentHit]
    entities: list[Entity]
    scores: dict[str, float]
    segments: list[str]
    negated: list[str]
    # Requests of clauses whose every word the recogniser was unsure of, beside a clause it heard more surely:
    # not acted on (step 10 of the module docstring).
    doubted: list[IntentHit] = field(default_factory=list)
    # Requests of clauses the segmentation chose whose best intent scored under the NLU threshold, surest first: not
    # acted on; the dialog may ask about one beside a sure request ("Did you also want ...?", also_wanted.also_request).
    below: list[IntentHit] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (dates as ISO strings) used by the CLI."""
        return {
            "text": self.text,
            "intents": [{"name": h.name, "confidence": round(h.confidence, 4), "slots": jsonable(h.slots)}
                        for h in self.intents],
            "negated": self.negated,
            "segments": self.segments,
            **({"doubted": [{"name": h.name, "confidence": round(h.confidence, 4), "heard": h.heard}
                            for h in self.doubted]} if self.doubted else {}),
            "entities": [{"type": e.type, "value": jsonable(e.value), "text": e.text, "start": e.start,
                          "end": e.end} for e in self.entities],
        }


@dataclass
class _Scored:
    clause: Clause
    intent: str
    prob: float


def _clause_heard(clause: Clause, tokens: list[str], heard: list[float | None]) -> float | None:
    """How surely the recogniser heard the words of ``clause`` (its connectors and negation cue left out)."""
    own = set(clause.words)
    return span_probability(heard, [k for k in range(clause.start, clause.end) if tokens[k] in own])


def _doubt(positives: list[_Scored], heard: dict[int, float | None]) -> tuple[list[_Scored], list[_Scored]]:
    """``positives`` split into those kept and those doubted: with two or more, a request whose clause's words were
    all heard less surely than UNSURE_CLAUSE adds no intent beside the clause heard most surely (dialog acts stay)."""
    known = [p for p in positives if heard[id(p)] is not None]
    if len(positives) < 2 or not known:
        return positives, []
    surest = max(known, key=lambda p: heard[id(p)] or 0.0)
    unsure = [p for p in positives if p is not surest and p.intent not in DIALOG_ACTS
              and (h := heard[id(p)]) is not None and h < UNSURE_CLAUSE]
    return [p for p in positives if p not in unsure], unsure


def _heard_only(domain: Domain) -> dict[str, list[str]]:
    """Per intent, the transcripts of its ``heard`` that are not another intent's example word for word: the
    recogniser turned a "thanks" into "Yeah.", and training on it teaches that "yeah" is thanks."""
    def key(text: str) -> str:
        return classifier_view(normalize(text).tokens)

    # Each example's key once (normalising is the slow part of training's preparation), not once per other intent.
    example_keys = {name: {key(u) for u in intent.examples} for name, intent in domain.intents.items()}
    heard: dict[str, list[str]] = {}
    for name, intent in domain.intents.items():
        others = set().union(*(keys for other, keys in example_keys.items() if other != name))
        heard[name] = [h for h in intent.heard if key(h) not in others]
    return heard


class NLU:
    """A trained NLU for one domain. Build it with :meth:`train`; it is read-only afterwards and safe to
    share between calls."""

    def __init__(self, domain: Domain, classifier: IntentClassifier, threshold: float, max_intents: int,
                 questions: Questions | None = None):
        """``classifier`` has learned ``faq`` too when ``questions`` is given (see :meth:`train`)."""
        self.domain = domain
        self.threshold = threshold
        self.max_intents = max_intents
        self.questions = questions
        self.question_classifier = classifier if questions is not None else None
        self.classifier: IntentClassifier | LabelsWithout = \
            LabelsWithout(classifier, FAQ) if questions is not None else classifier

    @classmethod
    def train(
        cls, domain: Domain, *, threshold: float = 0.45, max_intents: int = 3, features: Features = "tfidf",
        heard: bool = True, questions: Questions | None = None,
    ) -> NLU:
        """Train from the domain's example utterances (and, with ``heard``, what the recogniser made of them:
        the intents' ``heard`` lists). Raises ``ValueError`` if fewer than two intents have examples.

        ``threshold``: a clause's best intent below this probability is not reported. ``max_intents``: at
        most this many requests per utterance (the most confident); dialog acts such as greet or thanks
        come on top. An utterance whose only requests are negated is reported as ``deny``. ``features``:
        see :data:`dialogs.nlu.classifier.FEATURES`. ``questions``: a knowledge base; the NLU then also reports
        the ``faq`` act (step 7 of the module docstring)."""
        heard_only = _heard_only(domain) if heard else {}
        examples = {name: [*intent.examples, *heard_only.get(name, [])] for name, intent in domain.intents.items()}
        if questions is None:
            return cls(domain, fitted_classifier(examples, features), threshold, max_intents)
        if FAQ in domain.intents:
            raise ValueError(f"the domain declares an intent '{FAQ}': that name is the knowledge base's act")
        classifier = fitted_classifier({**examples, FAQ: list(questions.examples())}, features)
        domain = domain.model_copy(update={"intents": {**domain.intents, FAQ: Intent(
            description="a public question the knowledge base answers")}})
        return cls(domain, classifier, threshold, max_intents, questions)

    # ------------------------------------------------------------------------------------------ parse

    def parse(
        self, text: str, *, dtmf: str | None = None, today: date | None = None, secret_keys: bool = False,
        words: Sequence[HeardWord] = (),
    ) -> ParseResult:
        """Understand one utterance. Never raises on any input string.

        ``dtmf`` (keypad digits, e.g. "45281#") becomes an ``order_number`` entity (and a ``pin`` entity when
        it has 4 to 8 digits); with ``secret_keys`` (the bot asked for a PIN) only a ``pin`` entity. Dates
        resolve against ``today`` (default: the system date). ``words``: the recogniser's words of ``text`` with
        their probabilities (none for typed text); each intent then says how surely its clause was heard, and a
        clause heard unsurely beside a surer one adds no intent (step 10).
        """
        today = today or date.today()
        norm = normalize(text if isinstance(text, str) else "")
        entities = find_entities(norm, today)
        if dtmf:
            digits = "".join(c for c in dtmf if c.isdigit())
            if digits and secret_keys:
                entities.append(Entity("pin", digits, dtmf, 0, 0))
            elif digits:
                entities.append(Entity("order_number", digits, dtmf, 0, 0))
                if 4 <= len(digits) <= 8:
                    entities.append(Entity("pin", digits, dtmf, 0, 0))
        whole = self._probs([norm.tokens])[0] if norm.tokens else {}
        scores = dict(sorted(whole.items(), key=lambda kv: -kv[1])[:5])
        cuts = self._cuts(norm) if norm.tokens else []  # once: the segmentation and the faq stage both use them
        chosen = self._segment(norm, cuts) if norm.tokens else []
        offsets = norm.offsets()
        self._refer_to_answer(chosen, entities, norm, offsets)
        self._name_values(chosen, entities, norm, offsets)
        self._absorb_slot_clauses(chosen, entities, norm, offsets)
        if self.questions is not None:
            chosen = self._find_questions(chosen, norm, cuts, entities, offsets)

        positives: list[_Scored] = []
        negated: list[str] = []
        below: list[_Scored] = []
        for s in chosen:
            if s.intent == OUT_OF_SCOPE or s.prob < self.threshold:
                if s.intent not in DIALOG_ACTS and s.intent != FAQ and not s.clause.negated:
                    below.append(s)
                continue
            if len(chosen) > 1 and s.clause.words and set(s.clause.words) <= POLITENESS:
                continue
            if s.intent in TURN_OPENERS and any(p.intent not in DIALOG_ACTS or p.intent in ANSWERS for p in positives):
                continue  # a yes, no or "say again" answers the bot, so it opens the turn: later in it it is misheard
            if s.clause.negated:
                if s.intent not in negated:
                    negated.append(s.intent)
                continue
            same = next((p for p in positives if p.intent == s.intent), None)
            if same is None:
                positives.append(s)
            elif s.prob > same.prob:
                same.prob = s.prob
        negated = [n for n in negated if all(p.intent != n for p in positives)]
        tasks = [p for p in positives if p.intent not in DIALOG_ACTS]
        if len(tasks) > self.max_intents:
            # max_intents bounds the requests; dialog acts ("hi", "thanks") come on top
            drop = sorted(tasks, key=lambda p: -p.prob)[self.max_intents:]
            positives = [p for p in positives if p not in drop]

        heard = token_probabilities(norm.tokens, words) if words else None
        doubted: list[IntentHit] = []
        if heard is not None:
            sure = {id(p): _clause_heard(p.clause, norm.tokens, heard) for p in positives}
            positives, unsure = _doubt(positives, sure)
            doubted = [IntentHit(p.intent, p.prob, {}, " ".join(p.clause.words), sure[id(p)]) for p in unsure]
        hits = [IntentHit(p.intent, p.prob, self._slots(p, positives, entities, norm, offsets), " ".join(p.clause.words),
                          sure[id(p)] if heard is not None else None)
                for p in positives]
        if not hits:
            if negated:
                # only rejected requests ("I don't want to cancel"): that is a no
                hits = [IntentHit(DENY, max(s.prob for s in chosen if s.clause.negated), {})]
            else:
                oos = whole.get(OUT_OF_SCOPE, 1.0 - max(whole.values(), default=0.0))
                hits = [IntentHit(OUT_OF_SCOPE, float(oos), {})]
        return ParseResult(
            text=text if isinstance(text, str) else "",
            normalized=norm.text,
            intents=hits,
            entities=entities,
            scores={k: round(float(v), 4) for k, v in scores.items()},
            segments=[" ".join(s.clause.words) for s in chosen if s.clause.words],
            negated=negated,
            doubted=doubted,
            below=[IntentHit(s.intent, s.prob, {}, " ".join(s.clause.words),
                             _clause_heard(s.clause, norm.tokens, heard) if heard is not None else None)
                   for s in sorted(below, key=lambda b: -b.prob)],
        )

    def extract(self, text: str, slot_type: str, *, today: date | None = None) -> Entity | None:
        """The value of ``slot_type`` in an answer to a prompt ("uh it's four five two eight one" ->
        order_number "45281"; "yeah sure" -> yes_no True), or None."""
        return extract(normalize(text if isinstance(text, str) else ""), slot_type, today or date.today())

    # ------------------------------------------------------------------------------------- internals

    def _probs(self, clauses: list[list[str]] | list[tuple[str, ...]]) -> list[dict[str, float]]:
        rows = self.classifier.predict_proba([classifier_view(c) for c in clauses])
        return [dict(zip(map(str, self.classifier.classes), map(float, row), strict=True)) for row in rows]

    def _cuts(self, norm: Normalized) -> list[int]:
        """The segmenter's candidate cut points without those before a fragment that belongs to the clause before it
        (step 3 of the module docstring): a clause before it that is a dialog act ("hi | i moved") keeps the cut."""
        tokens = norm.tokens
        cuts = candidate_cuts(tokens, norm.breaks)
        fragments = fragment_cuts(tokens, cuts, norm.breaks)
        if not fragments:
            return cuts
        starts = dict(zip(cuts, [0, *cuts], strict=False))  # each cut point -> the cut point before it
        before = [make_clause(tokens, starts[c], c).words for c in fragments]
        acts = [max(p, key=lambda k: p[k]) in DIALOG_ACTS if w else True
                for w, p in zip(before, self._probs([w or ("",) for w in before]), strict=True)]
        drop = {c for c, act in zip(fragments, acts, strict=True) if not act}
        return [c for c in cuts if c not in drop]

    def _segment(self, norm: Normalized, cuts: list[int]) -> list[_Scored]:
        """The best segmentation of the utterance at the cut points ``cuts`` (:meth:`_cuts`; see the module
        docstring)."""
        tokens = norm.tokens
        points = [0, *cuts, len(tokens)]
        weak = weak_cuts(tokens, norm.breaks)
        span = len(points) if len(points) <= MAX_CUTS + 2 else MAX_SPAN
        spans = [(i, j) for i in range(len(points)) for j in range(i + 1, min(len(points), i + span + 1))]
        clauses = {(i, j): make_clause(tokens, points[i], points[j]) for i, j in spans}
        wordy = [key for key, c in clauses.items() if c.words]
        classes = self.classifier.classes
        probs = dict(zip(wordy, self.classifier.predict_proba(
            [classifier_view(clauses[k].words) for k in wordy]), strict=True))
        labels = list(map(str, classes))
        if OUT_OF_SCOPE in labels:
            # A complaint, or an answer before a request ("94107 | and where is my order"), names no request, whatever
            # the words the recogniser's transcripts share with requests.
            for lo, hi in requestless_spans(tokens, norm.breaks):
                for key in wordy:
                    if lo <= points[key[0]] and points[key[1]] <= hi:
                        probs[key] = np.eye(len(labels))[labels.index(OUT_OF_SCOPE)]

        # Each atomic piece (between neighbouring cut points) votes on the label of the clause that
        # holds it: a clause labelled change_address that also holds "where is my order" pays for it.
        # Pieces without words are neutral (uniform).
        uniform = np.full(len(classes), math.log(1.0 / len(classes)))
        piece_log = [np.log(np.maximum(probs[(k, k + 1)], 1e-9)) if (k, k + 1) in probs else uniform
                     for k in range(len(points) - 1)]
        prefix = np.vstack([np.zeros(len(classes)), np.cumsum(piece_log, axis=0)])

        scored: dict[tuple[int, int], _Scored] = {}
        gains: dict[tuple[int, int], float] = {}
        answered = {hi for _, hi in answer_spans(tokens, norm.breaks)} & set(points)  # unless a fragment joined it
        for key in wordy:
            i, j = key
            if any(points[i] < hi < points[j] for hi in answered):
                gains[key] = -math.inf  # the answer before a request ends a clause ("94107, | where is my order")
                continue
            if clauses[key].negated and any(points[k] not in weak for k in range(i + 1, j)):
                gains[key] = -math.inf  # a negation reaches to the next clause opener, no further
                continue
            if points[i] in weak and len(clauses[key].words) < 3:
                gains[key] = -math.inf  # "return | my order": an object alone is not a clause
                continue
            if points[j] in weak and len(clauses[key].words) == 1 and clauses[key].words[0] in OBJECT_VERBS:
                gains[key] = -math.inf  # nor is a verb alone before its object ("return | my order and ...")
                continue
            total = np.log(np.maximum(probs[key], 1e-9)) + PIECE_WEIGHT * (prefix[j] - prefix[i])
            c = int(np.argmax(total))
            scored[key] = _Scored(clauses[key], str(classes[c]), float(probs[key][c]))
            gains[key] = float(total[c]) - CLAUSE_COST

        # best[j]: the best total score of a segmentation of tokens[0:points[j]]
        best: list[float] = [0.0] + [-math.inf] * (len(points) - 1)
        back: list[int] = [0] * len(points)
        for j in range(1, len(points)):
            for i in range(max(0, j - span), j):
                key = (i, j)
                # a span of connectors only ("and", "so") is free
                gain = gains.get(key, 0.0)
                if best[i] + gain > best[j]:
                    best[j], back[j] = best[i] + gain, i
        out: list[_Scored] = []
        j = len(points) - 1
        while j > 0:
            i = back[j]
            if (i, j) in scored:
                out.extend(reversed(self._rescue(scored[(i, j)], i, j, points, clauses, probs)))
            j = i
        out.reverse()
        return out

    def _rescue(self, s: _Scored, i: int, j: int, points: list[int], clauses: dict[tuple[int, int], Clause],
                probs: dict[tuple[int, int], np.ndarray]) -> list[_Scored]:
        """``s`` itself, or, when it names no request, its split at the cut point that leaves the surest request
        in a leading or trailing part (a complaint before "I want a manager", a request before an aside)."""
        if (s.intent != OUT_OF_SCOPE and s.prob >= self.threshold) or s.clause.negated or j - i < 2:
            return [s]
        classes = self.classifier.classes
        best: tuple[float, int, bool] | None = None
        for k in range(i + 1, j):
            for key, tail in (((k, j), True), ((i, k), False)):
                c = clauses.get(key)
                if key not in probs or c is None or c.negated or len(c.words) < 2:
                    continue
                label = int(np.argmax(probs[key]))
                p = float(probs[key][label])
                if str(classes[label]) not in (OUT_OF_SCOPE, *DIALOG_ACTS) and p >= RESCUE_MIN_PROB \
                        and (best is None or p > best[0]):
                    best = (p, k, tail)
        if best is None:
            return [s]
        p, k, tail = best
        found, rest = ((k, j), (i, k)) if tail else ((i, k), (k, j))
        label = int(np.argmax(probs[found]))
        hit = _Scored(clauses[found], str(classes[label]), p)
        other = clauses[rest]
        if rest in probs:
            r = int(np.argmax(probs[rest]))
            left = _Scored(other, str(classes[r]), float(probs[rest][r]))
        else:
            left = _Scored(other, OUT_OF_SCOPE, 0.0)
        return [left, hit] if tail else [hit, left]

    def _refer_to_answer(self, chosen: list[_Scored], entities: list[Entity], norm: Normalized,
                         offsets: list[tuple[int, int]]) -> None:
        """A clause right after an answer that refers to its value ("45281 | and where is it": "it" is the order) and
        names no request on its own words is read with the value in the pronoun's place ("where is order 45281").
        Relabels such clauses in place; the request then takes the answer's value (:meth:`_slots`)."""
        answers = answer_spans(norm.tokens, norm.breaks)
        if not answers:
            return
        lo, hi = answers[0]
        start, end = offsets[lo][0], offsets[hi - 1][1]
        value = next((e for e in entities if start <= e.start < end and e.type in REFERRED), None)
        after = next((s for s in chosen if s.clause.start >= hi and s.clause.words), None)
        if value is None or after is None or after.clause.negated \
                or (after.intent not in (OUT_OF_SCOPE, *DIALOG_ACTS) and after.prob >= self.threshold):
            return
        words = list(after.clause.words)
        at = next((k for k, w in enumerate(words) if w in PRONOUNS), None)
        if at is None:
            return
        words[at:at + 1] = [REFERRED[value.type], str(value.value)]
        probs = self._probs([words])[0]
        best = max(probs, key=lambda k: probs[k])
        if best not in (OUT_OF_SCOPE, *DIALOG_ACTS) and probs[best] >= self.threshold and self._wants(best, value.type):
            after.intent, after.prob = best, probs[best]

    def _name_values(self, chosen: list[_Scored], entities: list[Entity], norm: Normalized,
                     offsets: list[tuple[int, int]]) -> None:
        """A clause that names no request and holds a value without the noun that says what it is ("where is 45281")
        is read with the noun before the value ("where is order 45281"). Relabels such clauses in place when that
        names a request surely, it is the request the clause's other words lean to most ("where is"; "the zip is"
        leans to none with an order number) and it has a slot of the value's type. A value with fewer than
        NAMED_MIN_WORDS other words ("45281 please") is an answer, not a request."""
        requestless = set(requestless_spans(norm.tokens, norm.breaks))
        for s in chosen:
            c = s.clause
            if c.negated or (s.intent not in (OUT_OF_SCOPE, *DIALOG_ACTS) and s.prob >= self.threshold) \
                    or (c.start, c.end) in requestless or c.end > len(offsets):
                continue
            lo, hi = offsets[c.start][0], offsets[c.end - 1][1]
            value = next((e for e in entities if lo <= e.start < hi and e.type in REFERRED), None)
            if value is None:
                continue
            inside = [k for k in range(c.start, c.end) if value.start <= offsets[k][0] < value.end]
            others = [norm.tokens[k] for k in range(c.start, c.end) if k not in inside]
            if not inside or len(others) < NAMED_MIN_WORDS or REFERRED[value.type] in others:
                continue
            words = [*norm.tokens[c.start:inside[0]], REFERRED[value.type], *norm.tokens[inside[0]:c.end]]
            own, named = self._probs([others, words])
            leaning = max((k for k in own if k not in (OUT_OF_SCOPE, *DIALOG_ACTS)), key=lambda k: own[k], default=None)
            best = max(named, key=lambda k: named[k])
            if best == leaning and named[best] >= self.threshold and self._wants(best, value.type):
                s.intent, s.prob = best, named[best]

    def _absorb_slot_clauses(self, chosen: list[_Scored], entities: list[Entity], norm: Normalized,
                             offsets: list[tuple[int, int]]) -> None:
        """A short clause that only gives a value for a neighbouring request belongs to that request:
        in "the charger is faulty so i want to return it" the fault is the return's reason, not a
        technical_support request. Relabels such clauses in place. An answer before a request ("94107 | and where is
        my order 45281") stays an answer: its value is the request's only when the request names none."""
        tokens = norm.tokens
        answers = set(requestless_spans(tokens, norm.breaks))
        for k, s in enumerate(chosen):
            if s.clause.negated or len(s.clause.words) > ABSORB_MAX_WORDS or s.clause.end > len(offsets) \
                    or (s.clause.start, s.clause.end) in answers:
                continue
            lo, hi = offsets[s.clause.start][0], offsets[s.clause.end - 1][1]
            inside = [e for e in entities if lo <= e.start < hi and e.type != "yes_no"]
            if inside and self._says_itself(s, inside, tokens, offsets):
                continue
            for t in {e.type for e in inside}:
                if self._wants(s.intent, t):
                    continue
                for n in (k - 1, k + 1):
                    if 0 <= n < len(chosen) and not chosen[n].clause.negated and chosen[n].intent != OUT_OF_SCOPE \
                            and chosen[n].prob >= self.threshold and self._wants(chosen[n].intent, t):
                        s.intent, s.prob = chosen[n].intent, chosen[n].prob
                        break

    def _says_itself(self, s: _Scored, inside: list[Entity], tokens: list[str],
                     offsets: list[tuple[int, int]]) -> bool:
        """True if the clause's words outside its values name its own request surely ("my password")."""
        rest = [tokens[k] for k in range(s.clause.start, s.clause.end)
                if not any(e.start < offsets[k][1] and offsets[k][0] < e.end for e in inside)]
        if not rest or s.intent == OUT_OF_SCOPE:
            return False
        return self._probs([rest])[0].get(s.intent, 0.0) >= KEEP_OWN_PROB

    def _find_questions(self, chosen: list[_Scored], norm: Normalized, cuts: list[int], entities: list[Entity],
                        offsets: list[tuple[int, int]]) -> list[_Scored]:
        """The second stage of the ``faq`` act (step 7 of the module docstring): each clause as it is, or as a
        question and the rest of it, or relabelled ``faq`` as a whole."""
        assert self.questions is not None and self.question_classifier is not None
        tokens = norm.tokens
        # every part that could be a question: (clause index, question part, rest or None)
        parts: list[tuple[int, Clause, Clause | None]] = []
        for n, s in enumerate(chosen):
            if s.clause.negated or not s.clause.words:
                continue
            parts.append((n, s.clause, None))
            if s.intent in DIALOG_ACTS:
                continue  # a question inside a request: the rest must still be that request
            for k in (c for c in cuts if s.clause.start < c < s.clause.end):
                head, tail = make_clause(tokens, s.clause.start, k), make_clause(tokens, k, s.clause.end)
                parts += [(n, head, tail), (n, tail, head)]
        parts = [(n, q, r) for n, q, r in parts if len(q.words) >= FAQ_MIN_WORDS and not q.negated
                 and q.end <= len(offsets) and (r is None or (len(r.words) >= FAQ_MIN_WORDS and not r.negated))]
        if not parts:
            return chosen
        judge = self.question_classifier
        faq_col = list(map(str, judge.classes)).index(FAQ)
        faq_probs = judge.predict_proba([classifier_view(q.words) for _, q, _ in parts])[:, faq_col]
        likely = [(part, float(p)) for part, p in zip(parts, faq_probs, strict=True) if p > 0.5]
        rests = self._probs([r.words for (_, _, r), _ in likely if r is not None])
        found: dict[int, list[_Scored]] = {}
        for ((n, q, r), p) in likely:
            if n in found:
                continue
            label = chosen[n].intent
            rest: _Scored | None = None
            if r is not None:
                probs = rests.pop(0)
                best = max(probs, key=lambda k: probs[k])
                if best != label:
                    continue
                rest = _Scored(r, best, probs[best])
            lo, hi = offsets[q.start][0], offsets[q.end - 1][1]
            if any(lo <= e.start < hi and e.type != "yes_no" and self._wants(label, e.type) for e in entities):
                continue  # "how can I send back order 33451" is a return
            needed = FAQ_MIN_SCORE if label in DIALOG_ACTS else FAQ_OVER_REQUEST_SCORE
            if self.questions.score(" ".join(q.words)) < needed:
                continue
            question = _Scored(q, FAQ, p)
            found[n] = [question] if rest is None else sorted([question, rest], key=lambda x: x.clause.start)
        self._join_questions(chosen, found, tokens, entities, offsets)
        out: list[_Scored] = []
        for n, s in enumerate(chosen):
            if found.get(n) == []:
                continue  # the second half of a question read as one with the clause before it
            out.extend(found.get(n, [s]))
        return out

    def _join_questions(self, chosen: list[_Scored], found: dict[int, list[_Scored]], tokens: list[str],
                        entities: list[Entity], offsets: list[tuple[int, int]]) -> None:
        """Two neighbouring clauses that are one public question the segmenter cut in two ("can i pick up | my
        order myself"): each request's words alone are weak evidence, the whole a question near an entry.
        Records the joined question under the first clause and an empty list under the second."""
        assert self.questions is not None and self.question_classifier is not None
        pairs = [n for n in range(len(chosen) - 1) if n not in found and n + 1 not in found
                 and not chosen[n].clause.negated and not chosen[n + 1].clause.negated
                 and chosen[n].intent not in DIALOG_ACTS and chosen[n + 1].intent not in DIALOG_ACTS]
        if not pairs:
            return
        joined = [make_clause(tokens, chosen[n].clause.start, chosen[n + 1].clause.end) for n in pairs]
        judge = self.question_classifier
        faq_col = list(map(str, judge.classes)).index(FAQ)
        probs = judge.predict_proba([classifier_view(q.words) for q in joined])[:, faq_col]
        for n, q, p in zip(pairs, joined, probs, strict=True):
            if p <= 0.5 or n in found or n + 1 in found or q.end > len(offsets):
                continue
            lo, hi = offsets[q.start][0], offsets[q.end - 1][1]
            if any(lo <= e.start < hi and e.type != "yes_no" and (self._wants(chosen[n].intent, e.type)
                                                                  or self._wants(chosen[n + 1].intent, e.type))
                   for e in entities):
                continue
            if self.questions.score(" ".join(q.words)) >= FAQ_OVER_REQUEST_SCORE:
                found[n], found[n + 1] = [_Scored(q, FAQ, float(p))], []

    def _slots(self, hit: _Scored, hits: list[_Scored], entities: list[Entity], norm: Normalized,
               offsets: list[tuple[int, int]]) -> dict[str, Any]:
        """Fill the intent's slots from entities of the slot's type, same clause first."""
        intent = self.domain.intents.get(hit.intent)
        if intent is None:
            return {}

        def clause_of(e: Entity) -> _Scored | None:
            for h in hits:
                lo = offsets[h.clause.start][0] if h.clause.start < len(offsets) else 0
                hi = offsets[h.clause.end - 1][1] if h.clause.end - 1 < len(offsets) else 0
                if lo <= e.start < hi:
                    return h
            return None

        slots: dict[str, Any] = {}
        for slot_name in intent.slots:
            slot = self.domain.slots.get(slot_name)
            if slot is None:
                continue
            cands = [e for e in entities if e.type == slot.type]
            if slot.type == "date":
                birth_slot = "birth" in slot_name
                ends = [0] + [d.end for d in cands]  # context of a date ends at the previous date
                cands = [e for e, after in zip(cands, ends, strict=False)
                         if is_birth_context(norm.text, e.start, after) == birth_slot]
            if not cands:
                continue
            own = [e for e in cands if clause_of(e) is hit]
            # an entity in another intent's clause belongs to that intent if it has a slot of this type
            free = [e for e in cands if (h := clause_of(e)) is None or not self._wants(h.intent, slot.type)]
            picks = own or free
            if picks:
                slots[slot_name] = picks[0].value
        return slots

    def _wants(self, intent_name: str, slot_type: str) -> bool:
        intent = self.domain.intents.get(intent_name)
        if intent is None:
            return False
        return any((s := self.domain.slots.get(n)) is not None and s.type == slot_type for n in intent.slots)
