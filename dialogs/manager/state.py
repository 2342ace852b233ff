"""Per-call dialog state: the agenda of requests, what the bot waits for, identity, counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dialogs.jsonable import jsonable
from dialogs.nlu.parser import FAQ

ACTS = {"greet", "goodbye", "affirm", "deny", "thanks", "repeat", "out_of_scope"}
NOT_REQUESTS = ACTS | {FAQ}  # a public question is answered from knowledge, never a flow
FREE_TEXT_SLOTS = {"reason"}  # answered in the caller's own words: nothing to bias the recogniser towards


class Expect(StrEnum):
    """What the bot's last question was, so the next utterance is read as its answer."""

    NOTHING = "nothing"
    SLOT = "slot"
    CONFIRM = "confirm"
    VERIFY_PHONE = "verify_phone"
    VERIFY_FACTOR = "verify_factor"
    OFFER_HUMAN = "offer_human"
    RECALL = "recall"
    OFFER_CALLBACK = "offer_callback"  # nobody can take the call: does the caller want a callback?
    CALLBACK_CONFIRM = "callback_confirm"  # the number to call back, read back
    CALLBACK_NUMBER = "callback_number"
    ANYTHING_ELSE = "anything_else"
    CHECK_INTENT = "check_intent"  # "Just to check: you'd like to ...?" (the request was unsure)
    CORRECTION = "correction"  # "What should I change?" after a "no" at a confirmation
    ALSO_WANTED = "also_wanted"  # "Did you also want ...?" (a second request heard unsurely, see also_wanted.py)


@dataclass
class Question:
    """The question the bot waits an answer to, so silence or "repeat that" can ask it again: a slot's
    prompt (``slot``) or a named response rendered with ``values``; ``expects`` is the answer's entity type."""

    expect: Expect
    expects: str | None = None
    slot: str | None = None
    response: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    text: str = ""  # as last said


@dataclass
class Task:
    """One request on the agenda: an intent, its slots and where its flow is."""

    intent: str
    slots: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    status: str = "pending"  # pending, active, done, cancelled, failed, handed_off
    outcome: str | None = None  # outcome of the last action
    data: dict[str, Any] = field(default_factory=dict)  # data of the last action
    reprompts: int = 0
    acknowledged: bool = False  # the bot said it understood the request ("Sure, I can check your order.")
    queued: bool = False  # said inside an answer and waiting (asides.queue): the bot says when it moves on to it

    def as_dict(self) -> dict[str, Any]:
        return {
            "intent": self.intent,
            "status": self.status,
            "outcome": self.outcome,
            "slots": {k: jsonable(v) for k, v in self.slots.items()},
        }


@dataclass
class CallState:
    agenda: list[Task] = field(default_factory=list)
    current: Task | None = None
    finished: list[Task] = field(default_factory=list)
    expect: Expect = Expect.NOTHING
    expect_slot: str | None = None
    customer_id: int | None = None  # identified (by caller ID or phone number), not necessarily verified
    customer_name: str | None = None
    first_name: str | None = None
    verified: bool = False
    verified_by: str | None = None
    verify_attempts: int = 0
    no_match_streak: int = 0
    offered_human: bool = False
    last_bot_text: str = ""
    recall: dict[str, Any] | None = None
    ended: bool = False
    handed_off: bool = False
    frustration_last: float = 0.0
    frustration_max: float = 0.0
    frustration_explanation: str | None = None
    announced: int = 0  # tasks announced together in the current batch
    question: Question | None = None  # the pending question (None: nothing asked)
    no_input_streak: int = 0  # empty turns (silence, empty lines) in a row
    doubt: list[Any] = field(default_factory=list)  # requests held back until the caller confirms them
    recall_pending: bool = False  # the caller said the recalled matter is why they call: tell it once verified
    recall_told: bool = False
    also: Unsure | None = None  # a second request heard unsurely: asked about once the agenda is done


@dataclass(frozen=True)
class Unsure:
    """A request heard beside a sure one but scored under the NLU threshold: never acted on without the caller's yes.
    ``why`` says so for the trace of the turn that asks (its score, the band, its words)."""

    name: str
    confidence: float
    why: str


@dataclass
class Hit:
    """An intent the manager itself puts on the agenda (e.g. from memory), shaped like the NLU's hits."""

    name: str
    confidence: float
    slots: dict[str, Any]
    heard: float | None = None  # how surely its words were heard (the NLU's IntentHit.heard); None: not known
    clause: str = ""  # the words it was said in (the NLU's IntentHit.clause); "": not from words
