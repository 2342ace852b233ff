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
# The recogniser's own reading stands when the NLU is this sure of it: another reading with fewer requests
# would otherwise win on the certainty of what is left (multi-intent requests lost one of their intents).
FIRST_SURE = 0.8


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
    hypotheses: Sequence[Hypothesis],
    parse: Callable[[str], ParseResult],
    acoustic_weight: float = ACOUSTIC_WEIGHT,
    first_sure: float = FIRST_SURE,
) -> Choice:
    """The reading with the most support: NLU certainty of its intent set times the recogniser's per-token
    probability (to the power ``acoustic_weight``). The first hypothesis (the recogniser's own best) stands if
    the NLU's certainty of it is at least ``first_sure``, and a reading with fewer intents than an understood
    first one is never chosen; ties and an all-zero field go to the earliest reading.

    Raises ``ValueError`` for no hypotheses."""
    if not hypotheses:
        raise ValueError("no hypotheses to choose from")
    support: list[float] = []
    certainties: list[float] = []
    intents: list[tuple[str, ...]] = []
    for h in hypotheses:
        result = parse(h.text)
        intents.append(tuple(i.name for i in result.intents))
        acoustic = math.exp(min(0.0, h.avg_logprob) * acoustic_weight)
        certainties.append(nlu_certainty(result))
        support.append(round(certainties[-1] * acoustic, 4))
    if certainties[0] >= first_sure:
        return Choice(0, hypotheses[0].text, tuple(support), tuple(intents))
    # A reading with fewer requests than an understood first one has lost words, not gained certainty.
    needed = len(intents[0]) if certainties[0] > 0.0 else 0
    best = max((i for i in range(len(hypotheses)) if len(intents[i]) >= needed), key=lambda i: (support[i], -i))
    return Choice(best, hypotheses[best].text, tuple(support), tuple(intents))
