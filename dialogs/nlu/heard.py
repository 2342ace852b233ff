"""How sure the recogniser was of each word it heard, as the NLU sees it.

The speech recogniser hands over its words with their probabilities (:class:`HeardWord`); the parser maps them onto
its normalised tokens (:func:`token_probabilities`) to tell a clause heard clearly from one the recogniser guessed.
Typed text has no heard words: then nothing here applies and the parse is the text's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from dialogs.nlu.normalize import normalize


@dataclass(frozen=True)
class HeardWord:
    """One word as the recogniser decoded it (with its leading space and trailing punctuation, so the words
    joined give the transcript) and the mean probability of its tokens, 0-1."""

    text: str
    probability: float


def token_probabilities(tokens: Sequence[str], words: Sequence[HeardWord]) -> list[float | None]:
    """For each normalised token of the transcript, the probability of the heard word(s) it comes from; None for a
    token no heard word explains. Each word is normalised alone and the two token lists aligned: a token made of
    several words ("twenty four" -> "24") takes the least sure of them."""
    heard: list[str] = []
    probs: list[float] = []
    for w in words:
        for tok in normalize(w.text).tokens:
            heard.append(tok)
            probs.append(w.probability)
    out: list[float | None] = [None] * len(tokens)
    matcher = SequenceMatcher(None, list(tokens), heard, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out[i1:i2] = probs[j1:j2]
        elif op == "replace":
            least = min(probs[j1:j2])
            out[i1:i2] = [least] * (i2 - i1)
    return out


def span_probability(probs: Sequence[float | None], indexes: Sequence[int]) -> float | None:
    """The probability of the surest word among the tokens at ``indexes`` (a clause is heard clearly if any of
    its words was); None if none of them has one."""
    known = [p for k in indexes if (p := probs[k]) is not None]
    return max(known) if known else None
