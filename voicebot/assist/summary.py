"""The running summary on the agent page: what the bridged call is about so far, rebuilt as the caller speaks.

Extractive, no language model: the bot's hand-off summary, the requests (intents) and details (entities) the
NLU finds in the hand-off and in what the caller tells the agent, the caller's key sentences (those naming a
request or a detail, and the last one) and the domain actions the agent ran. The wrap-up form is prefilled from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dialogs.domain.schema import DIALOG_ACTS
from dialogs.manager.handoff import HandoffPacket
from dialogs.nlu.parser import ParseResult

KEY_SENTENCES = 3  # the caller's newest key sentences kept
# Dialog acts, public questions and the "get me a person" request say nothing about what the call is about.
NOT_TOPICS = frozenset({*DIALOG_ACTS, "faq", "speak_to_agent"})


@dataclass(frozen=True)
class BridgedTurn:
    """One turn of the bridged call: ``speaker`` caller or agent; ``action`` the domain action an agent turn
    reports (None for speech) and its ``outcome``."""

    speaker: str
    text: str
    action: str | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class Heard:
    """One caller sentence of the bridged call with what the NLU understood of it."""

    text: str
    intents: tuple[str, ...]
    slots: tuple[tuple[str, str], ...]  # (domain slot name, value as text), e.g. ("order_id", "63950")


@dataclass(frozen=True)
class RunningSummary:
    handoff: str  # the bot's hand-off summary
    intents: tuple[str, ...]  # requests in the order first heard: the hand-off's, then the bridged call's
    details: tuple[tuple[str, str], ...]  # (slot, value): the hand-off's slots, then what the caller said
    key_sentences: tuple[str, ...]  # the caller's newest sentences naming a request or a detail, and the last
    actions: tuple[str, ...]  # what the agent ran, as reported in the transcript
    actions_done: int  # how many of them did what was asked (outcome ok or already done)
    caller_turns: int  # the caller's turns on the bridged call so far
    heard: tuple[Heard, ...]  # every caller sentence of the bridged call, understood

    @property
    def text(self) -> str:
        """The summary as a paragraph for the page."""
        parts = [self.handoff.strip() or "The caller was handed to an agent."]
        if self.intents:
            parts.append("Requests: " + ", ".join(i.replace("_", " ") for i in self.intents) + ".")
        if self.details:
            parts.append("Details: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.details) + ".")
        if self.key_sentences:
            parts.append("Caller said: " + " / ".join(f"\u201c{s}\u201d" for s in self.key_sentences))
        if self.actions:
            parts.append("Agent ran: " + "; ".join(self.actions) + ".")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "handoff": self.handoff, "intents": list(self.intents),
                "details": [{"slot": k, "value": v} for k, v in self.details],
                "key_sentences": list(self.key_sentences), "actions": list(self.actions),
                "caller_turns": self.caller_turns}


def understand(text: str, parse: Callable[[str], ParseResult] | None) -> Heard:
    """``text`` with the requests and slot values the NLU (``parse``) finds in it; none without an NLU."""
    if parse is None:
        return Heard(text, (), ())
    result = parse(text)
    intents = tuple(dict.fromkeys(h.name for h in result.intents if h.name not in NOT_TOPICS))
    slots = tuple(dict.fromkeys((k, _text(v)) for h in result.intents for k, v in h.slots.items() if v is not None))
    return Heard(text, intents, slots)


def _text(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def running_summary(packet: HandoffPacket, bridged: Sequence[BridgedTurn],
                    parse: Callable[[str], ParseResult] | None) -> RunningSummary:
    """The summary of a bridged call so far: ``packet`` the hand-off, ``bridged`` the turns since, ``parse``
    the domain's NLU (None: intents and details from the hand-off only)."""
    heard = tuple(understand(t.text.strip(), parse) for t in bridged
                  if t.speaker == "caller" and t.action is None and t.text.strip())
    intents = [t.intent for t in (*packet.intents_done, *packet.intents_pending)]
    details = [(k, _text(v)) for k, v in packet.slots.items() if v is not None]
    for h in heard:
        intents.extend(h.intents)
        details.extend(h.slots)
    # What the caller just said always counts: the agent answers it next.
    key = [h.text for i, h in enumerate(heard) if h.intents or h.slots or i == len(heard) - 1]
    actions = tuple(t.text for t in bridged if t.action is not None)
    return RunningSummary(
        handoff=packet.summary,
        intents=tuple(dict.fromkeys(i for i in intents if i and i not in NOT_TOPICS)),
        details=tuple(dict.fromkeys(details)),
        key_sentences=tuple(key[-KEY_SENTENCES:]),
        actions=actions,
        actions_done=sum(1 for t in bridged if t.action is not None and t.outcome in ("ok", "already_done")),
        caller_turns=len(heard),
        heard=heard,
    )
