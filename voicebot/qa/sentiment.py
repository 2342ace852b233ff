"""The caller's sentiment from their words: a small lexicon with negation, enough to tell a caller who starts
annoyed and ends thankful. It reads words only; the voice's frustration is the prosody scorer's (audio/)."""

from __future__ import annotations

import re

POSITIVE = frozenset(
    ["thanks", "thank", "great", "perfect", "excellent", "wonderful", "good", "helpful", "appreciate", "appreciated", "awesome", "brilliant", "lovely", "nice", "happy", "glad", "fantastic", "solved", "sorted", "fine", "amazing", "pleased"]
)
NEGATIVE = frozenset(
    ["ridiculous", "terrible", "awful", "useless", "angry", "annoyed", "frustrated", "frustrating", "unacceptable", "worst", "horrible", "disappointed", "disappointing", "bad", "broken", "wrong", "late", "complaint", "complain", "stupid", "hate", "mad", "upset", "waste", "wasted", "joke", "rubbish", "nonsense", "pathetic", "incompetent", "furious"]
)
NEGATORS = frozenset({"not", "no", "never", "don't", "dont", "isn't", "isnt", "wasn't", "wasnt", "didn't", "didnt"})
_WORD = re.compile(r"[a-z']+")


def sentiment(text: str) -> float:
    """-1 (negative) .. 1 (positive); 0 for neutral or no opinion words. A negator within the two words
    before an opinion word turns it ("not good" is negative, "not bad" is mildly positive)."""
    words = _WORD.findall(text.lower())
    score = 0.0
    hits = 0
    for i, word in enumerate(words):
        polarity = 1.0 if word in POSITIVE else -1.0 if word in NEGATIVE else 0.0
        if not polarity:
            continue
        if any(w in NEGATORS for w in words[max(0, i - 2):i]):
            polarity = -polarity * 0.5
        score += polarity
        hits += 1
    if not hits:
        return 0.0
    return max(-1.0, min(1.0, score / hits))


def label(score: float) -> str:
    """negative / neutral / positive."""
    return "negative" if score <= -0.25 else "positive" if score >= 0.25 else "neutral"
