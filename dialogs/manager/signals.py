"""What the dialog learns about a caller turn from outside its words: the frustration signal and how sure
the recogniser was of the words.

The voice pipeline fills :class:`TurnSignals` from the prosody analysis of the turn's audio; ``voicebot chat``
reads it from a JSON line. :meth:`TurnSignals.to_dict` is the JSON stored with the caller's turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dialogs.nlu.heard import HeardWord

LEVELS = ("calm", "annoyed", "frustrated")
TRENDS = ("rising", "steady")


@dataclass(frozen=True)
class TurnSignals:
    """One turn's frustration: ``frustration`` score 0-1, its ``level`` (calm / annoyed / frustrated) and
    ``trend`` (rising / steady) if the scorer graded it, the reasons in words, and the scorer's whole analysis
    (``prosody``, JSON, stored with the turn; the dialog does not read it)."""

    frustration: float | None = None
    level: str | None = None
    trend: str | None = None
    explanation: str | None = None
    prosody: Mapping[str, Any] | None = None
    # How sure the recogniser was of the words (0-1, e.g. the mean token probability), None when typed.
    transcript_confidence: float | None = None
    # The recogniser's words with the probability of each (the NLU doubts clauses heard unsurely); empty when typed.
    # Not in to_dict: the words may hold a PIN said aloud (the decision trace masks them).
    heard_words: tuple[HeardWord, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TurnSignals:
        """Signals from their JSON (e.g. ``{"frustration": 0.8}``); values of the wrong type are left out."""
        score = data.get("frustration")
        level = data.get("frustration_level")
        trend = data.get("frustration_trend")
        explanation = data.get("frustration_explanation")
        prosody = data.get("prosody")
        confidence = data.get("transcript_confidence")
        words = data.get("heard_words")
        return cls(
            frustration=float(score) if isinstance(score, (int, float)) else None,
            level=level if isinstance(level, str) else None,
            trend=trend if isinstance(trend, str) else None,
            explanation=str(explanation) if explanation else None,
            prosody=prosody if isinstance(prosody, Mapping) else None,
            transcript_confidence=float(confidence) if isinstance(confidence, (int, float)) else None,
            heard_words=tuple(
                HeardWord(str(w[0]), float(w[1])) for w in words
                if isinstance(w, (list, tuple)) and len(w) == 2 and isinstance(w[1], (int, float))
            ) if isinstance(words, list) else (),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored with the caller's turn (``frustration``, ``frustration_level``, ``frustration_trend``,
        ``frustration_explanation`` and, if analysed, ``prosody``)."""
        out: dict[str, Any] = {
            "frustration": self.frustration,
            "frustration_level": self.level,
            "frustration_trend": self.trend,
            "frustration_explanation": self.explanation,
        }
        if self.prosody is not None:
            out["prosody"] = dict(self.prosody)
        if self.transcript_confidence is not None:
            out["transcript_confidence"] = self.transcript_confidence
        return out
