"""The intent classifier: TF-IDF word and character n-grams into a logistic regression (scikit-learn).

Why this: it trains from a few hundred examples in well under a second, predicts a clause in a fraction
of a millisecond, needs no download, and gives probabilities the parser can compare across candidate
segmentations. Character n-grams (within word boundaries) absorb ASR misspellings and inflections;
word bigrams keep phrases such as "log in" or "money back".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, make_pipeline

from dialogs.nlu.entities import mask_addresses
from dialogs.nlu.normalize import normalize

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


class IntentClassifier:
    """Multi-class probabilities over the intents it was trained on."""

    def __init__(self, *, c: float = 30.0, seed: int = 0):
        self._pipeline = make_pipeline(
            FeatureUnion([
                ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True,
                                          token_pattern=r"(?u)\b\w+\b")),
                ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                          min_df=2)),
            ]),
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
