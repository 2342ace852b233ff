"""Choosing among the recogniser's hypotheses of one utterance by what the NLU makes of each.

When the recogniser is unsure it offers several readings ("I will charge wife", "I was charged twice"); the
one to act on is the reading whose intents the NLU is surest of, weighted by how likely the recogniser found
the words themselves. A reading the NLU understands as nothing (``out_of_scope``) supports nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dialogs.nlu.parser import OUT_OF_SCOPE, ParseResult

# How much the recogniser's own word probability counts against the NLU's certainty (exponent of its
# per-token probability): 1 weighs both alike.
ACOUSTIC_WEIGHT = 1.0


@dataclass(frozen=True)
class Hypothesis:
    """One reading of the audio: its words and the recogniser's mean log probability per token."""

    text: str
    avg_logprob: float


@dataclass(frozen=True)
class Choice:
    """The chosen reading (``index`` into the hypotheses) and every reading's support, in the same order."""

    index: int
    text: str
    support: tuple[float, ...]
    intents: tuple[tuple[str, ...], ...]


def nlu_certainty(parse: ParseResult) -> float:
    """How sure the NLU is of the whole intent set: its least sure intent; 0 when it understood nothing."""
    if not parse.intents or any(h.name == OUT_OF_SCOPE for h in parse.intents):
        return 0.0
    return min(h.confidence for h in parse.intents)


def choose(
    hypotheses: Sequence[Hypothesis], parse: Callable[[str], ParseResult], acoustic_weight: float = ACOUSTIC_WEIGHT
) -> Choice:
    """The reading with the most support: NLU certainty of its intent set times the recogniser's per-token
    probability (to the power ``acoustic_weight``). Ties and an all-zero field go to the earliest reading, so
    the first hypothesis (the recogniser's own best) wins unless another is better supported.

    Raises ``ValueError`` for no hypotheses."""
    if not hypotheses:
        raise ValueError("no hypotheses to choose from")
    support: list[float] = []
    intents: list[tuple[str, ...]] = []
    for h in hypotheses:
        result = parse(h.text)
        intents.append(tuple(i.name for i in result.intents))
        acoustic = math.exp(min(0.0, h.avg_logprob) * acoustic_weight)
        support.append(round(nlu_certainty(result) * acoustic, 4))
    best = max(range(len(hypotheses)), key=lambda i: (support[i], -i))
    return Choice(best, hypotheses[best].text, tuple(support), tuple(intents))
