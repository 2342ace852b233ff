"""Suggestions beside the bridged call's transcript: the knowledge entries matching what the caller just said."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dialogs.knowledge import Retriever

TOP = 3
FLOOR = 0.2  # below this similarity an entry is noise, not a suggestion


@dataclass(frozen=True)
class KnowledgeSuggestion:
    entry_id: str
    question: str  # the entry's question variant nearest to what was said
    answer: str
    text: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def last_caller_words(bridged: Sequence[tuple[str, str]], packet: Mapping[str, Any] | None) -> str:
    """What the caller said last: on the bridged call (``(speaker, text)`` turns), else to the bot."""
    for speaker, text in reversed(bridged):
        if speaker == "caller" and text.strip():
            return text.strip()
    for line in reversed((packet or {}).get("transcript") or []):
        if isinstance(line, Mapping) and line.get("speaker") == "caller" and str(line.get("text") or "").strip():
            return str(line["text"]).strip()
    return ""


def knowledge_suggestions(retriever: Retriever, said: str) -> tuple[KnowledgeSuggestion, ...]:
    """The best entries for ``said``, best first, at most :data:`TOP`, none under :data:`FLOOR`."""
    return tuple(KnowledgeSuggestion(m.entry.id, m.question, m.entry.answer, m.entry.text, round(m.score, 3))
                 for m in retriever.rank(said, top=TOP) if m.score >= FLOOR)
