"""Suggestions beside the bridged call's transcript: the knowledge entries matching what the caller just said."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from dialogs.knowledge import Retriever
from dialogs.manager.handoff import HandoffPacket
from voicebot.assist.summary import BridgedTurn

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


def last_caller_words(bridged: Sequence[BridgedTurn], packet: HandoffPacket) -> str:
    """What the caller said last: on the bridged call, else to the bot (the hand-off's transcript)."""
    for turn in reversed(bridged):
        if turn.speaker == "caller" and turn.action is None and turn.text.strip():
            return turn.text.strip()
    for line in reversed(packet.transcript):
        if line.speaker == "caller" and line.text.strip():
            return line.text.strip()
    return ""


def knowledge_suggestions(retriever: Retriever, said: str) -> tuple[KnowledgeSuggestion, ...]:
    """The best entries for ``said``, best first, at most :data:`TOP`, none under :data:`FLOOR`."""
    return tuple(KnowledgeSuggestion(m.entry.id, m.question, m.entry.answer, m.entry.text, round(m.score, 3))
                 for m in retriever.rank(said, top=TOP) if m.score >= FLOOR)
