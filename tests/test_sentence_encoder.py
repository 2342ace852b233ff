"""One sentence encoder per process (dialogs.sentence_encoder), for the NLU's embedding features and the knowledge
retrieval alike; the real packaged model."""

from __future__ import annotations

import numpy as np

from dialogs.knowledge import sentence_encoder as knowledge_encoder
from dialogs.nlu.classifier import SentenceEmbedding
from dialogs.nlu.classifier import sentence_encoder as nlu_encoder
from dialogs.sentence_encoder import shared_sentence_encoder

TEXTS = ["i was charged twice", "do you ship abroad"]


def test_the_nlu_and_the_knowledge_base_embed_with_the_one_encoder() -> None:
    shared = shared_sentence_encoder()
    assert nlu_encoder() is shared_sentence_encoder() is shared
    rows = shared.embed(TEXTS)
    assert rows.dtype == np.float32 and rows.shape[0] == len(TEXTS)
    # The NLU takes the rows as they come (times its weight); the knowledge base makes them unit length.
    assert np.array_equal(SentenceEmbedding(weight=2.0).transform(TEXTS), rows.astype(np.float64) * 2.0)
    unit = knowledge_encoder().encode(TEXTS)
    assert np.array_equal(unit, rows / np.linalg.norm(rows, axis=1, keepdims=True))
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0)
