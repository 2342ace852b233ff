"""One conversation: reads each caller turn against what the bot asked, runs the domain's flows, and
decides when to hand the caller to a human.

Every turn produces a :class:`BotReply` with a decision trace a person can read: the intent scores, the
entities, the rules and flow steps that fired and, for a hand-off, why.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dialogs.db import repository
from dialogs.jsonable import jsonable
from dialogs.knowledge.dialog import FAQ
from dialogs.manager import (
    also_wanted,
    asides,
    callback,
    corrections,
    doubt,
    faq,
    flows,
    recall,
    verification,
)
from dialogs.manager.consent import RECORDED_CHANNELS
from dialogs.manager.handoff import HandoffPacket, build_handoff
from dialogs.manager.repair import OTHER_ORDER, QUESTION
from dialogs.manager.responses import Responder
from dialogs.manager.signals import TurnSignals
from dialogs.manager.state import FREE_TEXT_SLOTS, NOT_REQUESTS, CallState, Expect, Hit, Question, Task
from dialogs.nlu import Entity, ParseResult
from dialogs.nlu.entities import MASK, SECRET_TYPES
from dialogs.nlu.heard import HeardWord
from dialogs.nlu.segmenter import split_complaint

if TYPE_CHECKING:
    from dialogs.engine import DialogEngine

log = logging.getLogger(__name__)

MAX_TEXT = 1000  # longer input is cut: no caller says more than this in one turn
# Entities that carry no proof of identity: they stay readable even in an answer to "prove who you are".
NOT_SECRET_IN_VERIFICATION = {"yes_no", "reason"}
COUNT_WORDS = {2: "both", 3: "all three", 4: "all four"}
# The kind of answer each pending question asks for (BotReply.expects); a slot question gives its slot's type.
YES_NO_QUESTIONS = {Expect.CONFIRM, Expect.OFFER_HUMAN, Expect.RECALL, Expect.CHECK_INTENT, Expect.ALSO_WANTED}
FACTOR_TYPES = {"postcode": "postcode", "date_of_birth": "date", "pin": "pin"}
# Where the bot asked for no particular answer: after a greeting or "how can I help", and "anything else?".
OPEN_QUESTIONS = {Expect.NOTHING, Expect.ANYTHING_ELSE}


@dataclass
class Turn:
    """What the caller did in one turn: words (from STT or typed), keypad digits, and outside signals."""

    text: str = ""
    dtmf: str | None = None
    signals: TurnSignals = field(default_factory=TurnSignals)
    # Speech rejected (no ``text``) only because it sounded like another language, with its reading in the bot's
    # language: at an open question the dialog may ask whether that was meant (doubt.check_foreign_reading).
    foreign: doubt.ForeignReading | None = None


@dataclass
class BotReply:
    text: str
    intents: list[dict[str, Any]] = field(default_factory=list)
    action: str = "continue"  # continue | handoff | hangup
    handoff: HandoffPacket | None = None
    style: str = "default"  # default | calm
    trace: dict[str, Any] = field(default_factory=dict)
    outcome: str | None = None  # set when the call ends: resolved, handoff, abandoned, unresolved
    # The caller's turn as it may be stored, shown or logged, set when it held a secret (PIN, security code,
    # card number, or any answer to a verification question): words masked, keys replaced by MASK.
    heard: str | None = None
    keys_masked: bool = False
    # What kind of answer the bot's last question asks for (an entity type such as "order_number", "yes_no",
    # "postcode", "date"), None for an open question: the recogniser biases its vocabulary with it.
    expects: str | None = None
    # The caller declined the call recording in this turn (by words or the decline key): the application
    # stops the recording and deletes what was recorded.
    recording_declined: bool = False

    @property
    def state(self) -> str:
        return {"continue": "active", "handoff": "handoff", "hangup": "ended"}[self.action]


class DialogSession:
    """The dialog of one call. Not thread-safe: one turn at a time."""

    def __init__(
        self,
        engine: DialogEngine,
        *,
        channel: str,
        caller_id: str | None,
        call_id: str | None,
        clock: Callable[[], datetime],
        rng: random.Random,
        dialled: str | None = None,
        greeting: str | None = None,
        start_intent: str | None = None,
    ):
        self.engine = engine
        self.dialled = dialled
        self._greeting = greeting
        self._start_intent = start_intent
        self.domain = engine.domain
        self.channel = channel
        self.caller_id = caller_id
        self.call_id = call_id
        self.clock = clock
        self.say_ = Responder(engine.domain, rng)
        self.state = CallState()
        self.transcript: list[dict[str, Any]] = []
        self.contact_id: int | None = None
        self.handoff_packet: HandoffPacket | None = None
        self.outcome: str | None = None
        self._out: list[str] = []
        self._secrets = _Secrets()  # what of the current caller turn is masked in its record
        self._fired: list[str] = []
        self._style = "default"
        self._frustration_level: str | None = None
        self._frustration_trend: str | None = None
        self._hangup = False
        self._handoff_reason: str | None = None
        self.no_agent_outcome: str | None = None  # set when nobody could take the call (see callback)
        self.callback_reprompts = 0
        self._knowledge_trace: list[dict[str, Any]] = []
        self.knowledge_answered: list[str] = []  # ids of the knowledge entries the caller was given, in order
        self._complaint: str | None = None  # the caller's words of anger in this turn
        self._transcript_confidence: float | None = None
        self._heard_words: tuple[HeardWord, ...] = ()
        self._foreign: doubt.ForeignReading | None = None  # this turn's, if asked no question (see Turn.foreign)
        self._trace_extra: dict[str, Any] = {}
        self._acked_now = False  # this turn already said it understood ("I can help with both", "Sure, ...")
        # Recording consent (engine.options.recording): announced in a voice call's greeting; declined once.
        self.recording_announced = False
        self.recording_declined = False
        self._declined_now = False

    # ------------------------------------------------------------------ public API

    def start(self) -> BotReply:
        """Open the contact and greet. The greeting says the caller talks to an automated assistant."""
        now = self.clock()
        self._begin_turn()
        with self.engine.database.session() as s:
            customer = repository.find_customer_by_phone(s, self.caller_id) if self.caller_id else None
            if customer is not None:
                self.state.customer_id = customer.id
                self.state.first_name = customer.first_name
                self.state.customer_name = f"{customer.first_name} {customer.last_name}"
            self.contact_id = repository.open_contact(
                s, self.channel, self.caller_id, now, customer_id=self.state.customer_id
            )
            matters = []
            mem = self.engine.options.memory
            if customer is not None and mem.enabled and mem.remember:
                topics = {n: i.announce for n, i in self.domain.intents.items() if i.announce}
                matters = repository.open_matters(
                    s, customer.id, now, list(mem.remember), mem.remember_days, topics=topics
                )
        override = self._greeting or self.engine.options.greeting
        if self._start_intent is not None:
            # A number dedicated to one request: greet, then go straight into its flow.
            if override:
                self._out.append(override)
            else:
                self._say("greeting_short" if self.say_.has("greeting_short") else "greeting")
            self._fire(f"dialled number starts {self._start_intent}")
            self._add_tasks([Hit(self._start_intent, 1.0, {})], interrupt=False)
            self._acked_now = True  # the number itself says what the call is about
            self._announce_recording(first=True)
            flows.advance(self)
            return self._finish_turn(None, {"rule": "greeting + route flow"})
        # A caller ID proves nothing (it is easily spoofed): before verification the bot says that there is a
        # recent matter, never what it is; its details come from the flow the caller is verified in.
        if matters and self.say_.has("recall_recent"):
            m = matters[0]
            self.state.recall = {"kind": m.kind, "id": m.id, "text": m.text, "order_id": getattr(m, "order_id", None)}
            self._say("recall_recent")
            self._asked(Expect.RECALL, response="recall_recent")
            self._fire(f"memory: recalled {m.kind} {m.id} (not named before verification)")
        elif override:
            self._out.append(override)
        elif customer is not None and self.say_.has("greeting_known"):
            self._say("greeting_known")
        else:
            self._say("greeting")
        self._announce_recording()
        return self._finish_turn(None, {"rule": "greeting"})

    def handle(self, turn: Turn) -> BotReply:
        """Answer one caller turn."""
        self._begin_turn()
        if self.state.ended:
            return BotReply(text="", action="hangup", outcome=self.outcome, trace={"rule": "call already ended"})
        text = (turn.text or "").strip()[:MAX_TEXT]
        dtmf = (turn.dtmf or "").strip() or None
        self._signals(turn.signals)
        if self._declines_recording(text, dtmf):
            return self._finish_turn(None, {"rule": "recording declined"})
        # Speech the recogniser could not make out (confidence 0) is a miss, not silence: it goes to routing.
        if not text and not dtmf and turn.signals.transcript_confidence != 0.0:
            self.transcript.append({"speaker": "caller", "text": "", "dtmf": None, "at": self.clock().isoformat()})
            self._on_no_input()
            return self._finish_turn(None, {"rule": "empty input"})
        self.state.no_input_streak = 0
        if turn.foreign is not None and not text and not dtmf and self.state.expect in OPEN_QUESTIONS:
            self._foreign = turn.foreign  # never for an answer to a question: a PIN, an order number, a yes or no
        # Keys typed while the bot asks for a PIN are a PIN: never also an order number, never kept.
        verifying = self.state.expect is Expect.VERIFY_FACTOR
        secret_keys = bool(dtmf) and (verifying or self._expects_secret_slot())
        # Words of anger are how the caller feels, not a request: the rest of the turn is what they ask for.
        self._complaint, words = split_complaint(text)
        if self._complaint:
            self._fire(f"complaint: {self._complaint!r}")
        parse = self.engine.nlu.parse(words, dtmf=dtmf, today=self.clock().date(), secret_keys=secret_keys,
                                      words=turn.signals.heard_words)
        self._secrets = _Secrets.of(text, parse, verifying=verifying, keys=secret_keys)
        self.transcript.append({"speaker": "caller", "text": self._secrets.heard or text,
                                "dtmf": MASK if secret_keys else dtmf, "at": self.clock().isoformat()})
        self._route(parse, words, dtmf)
        return self._finish_turn(parse, {})

    def resume(self) -> BotReply:
        """The bot has the call again after a person had it (a supervisor took it over and handed it back): it
        says it is back and asks its pending question again, or how it can help; the dialog state is as it was."""
        self._begin_turn()
        self._fire("handed back to the bot")
        if self.say_.has("handed_back"):
            self._say("handed_back")
        else:
            self._out.append("I'm back.")
        self._reask()
        return self._finish_turn(None, {"rule": "handed back"})

    def end(self, reason: str = "caller_hangup") -> str:
        """Close the call (idempotent) and store the contact. Returns the outcome."""
        if self.outcome is None:
            self.outcome = self._final_outcome(reason)
        self.state.ended = True
        if self.contact_id is not None:
            redact = getattr(self.engine, "redact", None) or (lambda value: value)
            with self.engine.database.session() as s:
                repository.close_contact(
                    s,
                    self.contact_id,
                    self.clock(),
                    outcome=self.outcome,
                    summary=redact(build_handoff(self, reason=reason).summary),
                    intents=redact([{**t.as_dict(), "slots": self._mask_slots(t.as_dict()["slots"])}
                                    for t in self._all_tasks()]),
                    transcript=redact(self.transcript),
                    handoff=redact(self.handoff_packet.to_dict() if self.handoff_packet is not None else None),
                    frustration=self.state.frustration_max,
                )
        return self.outcome

    @property
    def verified_customer_id(self) -> int | None:
        return self.state.customer_id if self.state.verified else None

    # ------------------------------------------------------------------ recording consent

    def _announce_recording(self, first: bool = False) -> None:
        """Put the recording announcement into the greeting of a voice call (after its first sentence, so the
        greeting's question stays last; ``first``: after the whole greeting, before what follows it)."""
        consent = self.engine.options.recording
        if consent is None or self.channel not in RECORDED_CHANNELS or not self._out:
            return
        self.recording_announced = True
        head, *rest = re.split(r"(?<=[.!?])\s+", self._out[0], maxsplit=1)
        if first or not rest:
            self._out.insert(1, consent.announcement)
        else:
            self._out[0] = f"{head} {consent.announcement} {rest[0]}"

    def _declines_recording(self, text: str, dtmf: str | None) -> bool:
        """A decline of the recording (at any point of the call): confirm it and ask the pending question again."""
        consent = self.engine.options.recording
        if consent is None or not self.recording_announced or self.recording_declined \
                or not consent.declines(text, dtmf):
            return False
        self.recording_declined = self._declined_now = True
        self.state.no_input_streak = 0
        self._fire("caller declined the recording")
        self.transcript.append({"speaker": "caller", "text": text, "dtmf": dtmf, "at": self.clock().isoformat()})
        self._out.append(consent.confirmation)
        st = self.state
        # "no recording, and where is my order": the request waits its turn like one said inside an answer (never
        # read as the answer to the pending question: the "no" of the decline is no "no" to it).
        hits = []
        if text and st.expect is not Expect.VERIFY_FACTOR and not self._expects_secret_slot():
            parse = self.engine.nlu.parse(text, today=self.clock().date())
            hits = asides.requests_in(self, parse)
        queued = asides.queue(self, hits)
        if queued and (st.question is None or st.expect in OPEN_QUESTIONS or st.expect is Expect.RECALL):
            st.expect = Expect.NOTHING  # the request says what the call is about
            st.question = None
            flows.advance(self)
        elif st.question is None or st.expect is Expect.NOTHING:
            self._say("how_can_i_help")
        else:
            self._reask()
            asides.announce(self, queued)
        return True

    # ------------------------------------------------------------------ routing

    def _route(self, parse: ParseResult, text: str, dtmf: str | None) -> None:
        st = self.state
        names = [i.name for i in parse.intents]
        tasks = [i for i in parse.intents if i.name not in NOT_REQUESTS]
        only = names[0] if len(names) == 1 else None
        pure_complaint = bool(self._complaint) and not text.strip() and not dtmf

        # Requests that win whatever the bot asked.
        if not pure_complaint and ("speak_to_agent" in names or (dtmf == "0" and st.expect is not Expect.SLOT)):
            self._fire("caller asked for a person")
            self._handoff("caller_request", tasks=[t for t in tasks if t.name != "speak_to_agent"])
            return
        if self._frustration_reaction(tasks):
            return
        if self._complaint:
            self._fire("empathy for the caller's words")
            self._style = "calm"
            self._say("empathy" if self.say_.has("empathy") else "offer_human_declined")
            if pure_complaint:
                self._reask()
                return
        if only == "repeat":
            self._fire("repeat")
            if st.question is not None and st.expect is not Expect.NOTHING:
                self._reask()
            elif st.last_bot_text:
                self._out.append(st.last_bot_text)
            else:
                self._say("repeat_nothing")
            return
        if "goodbye" in names and not tasks and not self._answers_expected_slot(parse):
            self._fire("goodbye")
            self._goodbye()
            return
        if OTHER_ORDER.search(text) and corrections.corrects_to_other_order(parse) and corrections.take_other_order(self):
            return
        if recall.refund_of_recalled_return(self, text):
            return
        # An answer with a public question beside it ("yes, and what are your opening hours"): the answer does its
        # step and the question is answered in the same reply.
        beside = faq.beside_answer(self, parse) if st.expect not in OPEN_QUESTIONS else None
        if beside is not None:
            answer, verdicts = beside
            self._fire("public question beside the answer")
            secret_keys = bool(dtmf) and (st.expect is Expect.VERIFY_FACTOR or self._expects_secret_slot())
            self._dispatch(self.engine.nlu.parse(answer, dtmf=dtmf, today=self.clock().date(), secret_keys=secret_keys),
                           answer, dtmf)
            faq.tell(self, verdicts)
            return
        # A public question while the bot waits for an answer: answered, then the pending question again.
        if FAQ in names and not tasks and not self._answers_expected_slot(parse) \
                and not self._answers_in_own_words(text) and faq.answer_questions(self, parse, has_tasks=False):
            return
        self._dispatch(parse, text, dtmf)

    def _dispatch(self, parse: ParseResult, text: str, dtmf: str | None) -> None:
        """Read the turn as the answer to the pending question, or (none, or not answered) as an open turn."""
        st = self.state
        handler = {
            Expect.SLOT: self._on_slot_answer,
            Expect.CONFIRM: (lambda p, t, d: corrections.on_confirm(self, p, t, d)),
            Expect.VERIFY_PHONE: (lambda p, t, d: verification.on_verify_phone(self, p, t, d)),
            Expect.VERIFY_FACTOR: (lambda p, t, d: verification.on_verify_factor(self, p, t, d)),
            Expect.OFFER_HUMAN: self._on_offer_human,
            Expect.RECALL: (lambda p, t, d: recall.on_recall(self, p, t, d)),
            Expect.OFFER_CALLBACK: lambda p, t, d: callback.on_answer(self, p, t, d),
            Expect.CALLBACK_CONFIRM: lambda p, t, d: callback.on_answer(self, p, t, d),
            Expect.CALLBACK_NUMBER: lambda p, t, d: callback.on_answer(self, p, t, d),
            Expect.CHECK_INTENT: (lambda p, t, d: doubt.on_check_intent(self, p, t, d)),
            Expect.CORRECTION: (lambda p, t, d: corrections.on_correction(self, p, t, d)),
            Expect.ALSO_WANTED: (lambda p, t, d: also_wanted.on_answer(self, p, t, d)),
        }.get(st.expect)
        if handler is not None and handler(parse, text, dtmf):
            return
        self._on_open(parse)

    def _on_no_input(self) -> None:
        """Silence or an empty line: ask the pending question again; after max_reprompts of them offer a
        person, then end politely."""
        st = self.state
        st.no_input_streak += 1
        limit = self.engine.options.max_reprompts
        self._fire(f"no input ({st.no_input_streak} in a row)")
        if st.no_input_streak > limit + 1 or (st.no_input_streak > limit and st.offered_human):
            self._fire("no input: end the call")
            self._say("no_input_goodbye" if self.say_.has("no_input_goodbye") else "goodbye")
            st.ended = True
            self._hangup = True
            return
        if st.no_input_streak > limit and self.say_.has("no_input_offer_human"):
            st.offered_human = True
            self._say("no_input_offer_human")
            self._asked(Expect.OFFER_HUMAN, response="no_input_offer_human")
            return
        self._say("empty_input")
        self._reask()

    def _reask(self) -> None:
        """Ask the pending question again (another variant of it), or, with nothing pending, ask how to help."""
        st = self.state
        q = st.question
        if q is None or st.expect is Expect.NOTHING:
            self._fire("nothing pending: ask how to help")
            self._say("still_there" if self.say_.has("still_there") and not self._complaint else "how_can_i_help")
            return
        self._fire(f"ask again: {q.slot or q.response}")
        if q.slot is not None:
            prompt = self.domain.slots[q.slot].prompt
            variants = prompt if isinstance(prompt, list) else [prompt]
            others = [v for v in variants if v != q.text] or variants
            self._out.append(self.say_.rng.choice(others))
        elif q.response is not None:
            self._say(q.response, **q.values)
        st.expect = q.expect
        if q.slot is not None:
            st.expect_slot = q.slot

    def _asked(self, expect: Expect, *, slot: str | None = None, response: str | None = None,
               values: dict[str, Any] | None = None) -> None:
        """Note the question just said as the pending one."""
        st = self.state
        st.expect = expect
        if slot is not None:
            st.expect_slot = slot
        st.question = Question(expect, self._expects_for(expect, slot), slot, response, dict(values or {}),
                               self._out[-1] if self._out else "")

    def _expects_for(self, expect: Expect, slot: str | None) -> str | None:
        if expect is Expect.SLOT and slot is not None:
            slot_type = self.domain.slots[slot].type
            return None if slot_type in FREE_TEXT_SLOTS else slot_type
        if expect in YES_NO_QUESTIONS:
            return "yes_no"
        if expect is Expect.VERIFY_PHONE:
            return "phone"
        if expect is Expect.VERIFY_FACTOR:
            return next((FACTOR_TYPES[m] for m in self.domain.verification.methods if m in FACTOR_TYPES), None)
        return None

    def _on_open(self, parse: ParseResult) -> None:
        """No pending question (or it was not answered): take new requests or dialog acts."""
        st = self.state
        names = [i.name for i in parse.intents]
        tasks = [i for i in parse.intents if i.name not in NOT_REQUESTS]
        # A second request heard unsurely beside a sure one: asked about once the sure ones are done.
        also_wanted.note(self, parse)
        # Public questions are answered first (no verification); a request in the same turn follows.
        if faq.answer_questions(self, parse, has_tasks=bool(tasks)):
            return
        if doubt.check_on_doubt(self, parse, tasks):
            return
        if tasks:
            st.no_match_streak = 0
            self._add_tasks(tasks, interrupt=st.current is not None)
            flows.advance(self)
            return
        if "thanks" in names:
            st.no_match_streak = 0
            self._fire("thanks")
            self._say("you_are_welcome")
            self._asked(Expect.ANYTHING_ELSE, response="you_are_welcome")
            return
        if "greet" in names:
            st.no_match_streak = 0
            self._fire("greet")
            self._say("greet_back" if self.say_.has("greet_back") else "how_can_i_help")
            return
        if "deny" in names and st.expect is Expect.ANYTHING_ELSE:
            self._fire("nothing else: goodbye")
            self._goodbye()
            return
        if "affirm" in names and st.expect is Expect.ANYTHING_ELSE:
            st.no_match_streak = 0
            self._fire("something else")
            self._say("how_can_i_help")
            st.expect = Expect.NOTHING
            st.question = None
            return
        st.no_match_streak += 1
        self._fire(f"not understood ({st.no_match_streak} in a row)")
        if st.no_match_streak >= self.engine.options.max_no_match:
            self._handoff("not_understood")
            return
        # Still a miss (a caller who speaks another language reaches a person as soon as before), but asked about.
        if self._foreign is not None and doubt.check_foreign_reading(self, self._foreign):
            return
        if st.current is not None:
            # Remind the caller of the pending question rather than starting over.
            self._say("not_understood")
            flows.advance(self)
            return
        self._say("not_understood")

    def _on_slot_answer(self, parse: ParseResult, text: str, dtmf: str | None) -> bool:
        st = self.state
        task = st.current
        slot_name = st.expect_slot
        assert task is not None and slot_name is not None
        slot = self.domain.slots[slot_name]
        value = self._slot_value(parse, slot_name, slot.type, text, dtmf)
        # Free text answers with the first clause, whatever request the NLU reads in it ("it doesn't work" is a
        # reason, not a technical problem); "it's the wrong size, and can you also reset my password": the words of
        # no later request.
        free = slot.type in FREE_TEXT_SLOTS
        first = parse.segments[0] if free and parse.segments else None
        if value is not None and free:
            words = asides.answer_segments(parse, [h for h in asides.requests_in(self, parse) if h.clause != first])
            if words and len(words) < len(parse.segments):
                value = ", ".join(words)
        if value is not None:
            task.slots[slot_name] = value
            st.no_match_streak = 0
            st.expect = Expect.NOTHING
            self._fire(f"slot {slot_name} filled")
            # The answer may carry the intent's other details too ("12 Oak Street, ... 62704" has the postcode).
            for other in self.domain.intents[task.intent].slots:
                if other != slot_name and task.slots.get(other) is None:
                    other_type = self.domain.slots[other].type
                    ent = next((e for e in parse.entities if e.type == other_type and e.type != "reason"), None)
                    if ent is not None and other_type not in ("date",):
                        task.slots[other] = ent.value
                        self._fire(f"slot {other} filled from the same answer")
            # The same sentence may carry another request ("it's 45281, and also reset my password"): it waits its
            # turn; the clause holding the answer is no request ("45281" read as an order request).
            answer = [e.text for e in parse.entities if e.value == value or e.value == task.slots.get(slot_name)]
            others = [h for h in asides.requests_in(self, parse, answer=answer) if first is None or h.clause != first]
            queued = asides.queue(self, others)
            flows.advance(self)
            asides.announce(self, queued)
            return True
        tasks = [i for i in parse.intents if i.name not in NOT_REQUESTS and i.name != task.intent]
        if tasks and max(i.confidence for i in tasks) >= 0.6:
            self._fire("new request instead of an answer")
            self._add_tasks(tasks, interrupt=True)
            flows.advance(self)
            return True
        names = [i.name for i in parse.intents]
        if "deny" in names and slot.type not in ("yes_no",):
            self._fire(f"caller declined to give {slot_name}")
            flows.cancel_current(self)
            return True
        return self._reprompt(task, slot_name)

    def _reprompt(self, task: Task, slot_name: str) -> bool:
        task.reprompts += 1
        self._fire(f"re-ask {slot_name} ({task.reprompts})")
        if task.reprompts > self.engine.options.max_reprompts:
            self._handoff("slot_not_understood")
            return True
        flows.reprompt_slot(self, slot_name)
        return True

    def _on_offer_human(self, parse: ParseResult, text: str, dtmf: str | None) -> bool:
        yes = self._yes_no(parse, text, dtmf)
        others = asides.requests_in(self, parse)
        if yes is True:
            self._fire("caller accepted a human")
            if others:
                asides.queue(self, others)  # in the hand-off packet: the colleague hears of it too
            self._handoff("frustration")
            return True
        self.state.expect = Expect.NOTHING
        if yes is False:
            self._fire("caller declined a human")
            self._say("offer_human_declined")
            queued = asides.queue(self, others)
            if self.state.current is not None or self.state.agenda:
                flows.advance(self)
                asides.announce(self, queued)
            else:
                self._say("how_can_i_help")
            return True
        return False

    def _acknowledge(self, task: Task) -> None:
        """Say once that the request was understood before asking anything for it."""
        if task.acknowledged:
            return
        task.acknowledged = True
        if self._acked_now:
            return
        self._acked_now = True
        intent = self.domain.intents[task.intent]
        if self.say_.has(f"ack_{task.intent}"):
            self._say(f"ack_{task.intent}")
        elif self.say_.has("ack_request") and intent.announce:
            self._say("ack_request", what=intent.announce)

    def _queue(self, hits: list[Any]) -> None:
        """Put requests on the agenda without a word (the bot is saying something else first)."""
        known = {t.intent for t in self._all_tasks() if t.status not in ("done", "cancelled")}
        for hit in hits:
            if hit.name in self.domain.intents and hit.name not in known:
                known.add(hit.name)
                self.state.agenda.append(Task(intent=hit.name, slots={k: v for k, v in hit.slots.items() if v is not None}))

    # ------------------------------------------------------------------ flows

    def _add_tasks(self, hits: list[Any], *, interrupt: bool) -> None:
        st = self.state
        known = {t.intent for t in st.agenda} | ({st.current.intent} if st.current else set())
        new = []
        for hit in hits:
            if hit.name in known or hit.name not in self.domain.intents:
                # Slots given again for a request already on the agenda still count.
                for t in [*st.agenda, *([st.current] if st.current else [])]:
                    if t.intent == hit.name:
                        t.slots.update({k: v for k, v in hit.slots.items() if v is not None})
                continue
            known.add(hit.name)
            new.append(Task(intent=hit.name, slots={k: v for k, v in hit.slots.items() if v is not None}))
        if not new:
            return
        self._fire("agenda: " + ", ".join(t.intent for t in new))
        if interrupt and st.current is not None:
            self._say("interrupt_ack")
            self._acked_now = True
            st.current.status = "pending"
            st.agenda = [*new, st.current, *st.agenda]
            st.current = None
            st.expect = Expect.NOTHING
        else:
            st.agenda.extend(new)
        if len(new) > 1 and not interrupt:
            self._say(
                "agenda_intro",
                count=COUNT_WORDS.get(len(new), f"all {len(new)}"),
                first=self.domain.spoken_name(new[0].intent),
            )
            st.announced = len(new)
            self._acked_now = True

    # ------------------------------------------------------------------ hand-off and end

    def _frustration_reaction(self, tasks: list[Any]) -> bool:
        st = self.state
        opts = self.engine.options
        voice_annoyed = st.frustration_last >= opts.annoyed or self._frustration_level in ("annoyed", "frustrated")
        triggered = (
            st.frustration_last >= opts.frustrated
            or self._frustration_level == "frustrated"
            or self._frustration_trend == "rising"
            # angry words said in an annoyed voice weigh as much as a frustrated voice
            or (bool(self._complaint) and voice_annoyed)
        )
        if not triggered or st.offered_human or st.handed_off:
            return False
        st.offered_human = True
        if tasks:
            self._queue(tasks)
        if self.domain.on_frustration == "handoff":
            self._fire(f"frustration {st.frustration_last:.2f} ({self._frustration_level or 'score'}, trend {self._frustration_trend or '-'}): hand off")
            self._handoff("frustration")
            return True
        self._fire(f"frustration {st.frustration_last:.2f} ({self._frustration_level or 'score'}, trend {self._frustration_trend or '-'}): offer a human")
        self._say("offer_human")
        self._asked(Expect.OFFER_HUMAN, response="offer_human")
        return True

    def _handoff(self, reason: str, tasks: list[Any] | None = None, say: bool = True) -> None:
        st = self.state
        if tasks:
            self._add_tasks(tasks, interrupt=False)
        packet = build_handoff(self, reason=reason)
        desk = self.engine.desk
        if desk is not None and not desk.agents_available(packet.queue):
            self.handoff_packet, self._handoff_reason = packet, reason
            callback.offer(self)
            return
        self._fire(f"hand-off: {reason}")
        st.handed_off = True
        st.expect = Expect.NOTHING
        st.question = None
        if say:
            name = {"verification_failed": "handoff_verification", "not_understood": "handoff_no_match"}.get(
                reason, "handoff"
            )
            self._say(name)
        self.handoff_packet = build_handoff(self, reason=reason)
        self._handoff_reason = reason

    def _goodbye(self) -> None:
        self._say("goodbye")
        self.state.ended = True
        self._hangup = True

    def _final_outcome(self, reason: str) -> str:
        if self.state.handed_off:
            return "handoff"
        if self.no_agent_outcome is not None:
            return self.no_agent_outcome
        pending = self.state.agenda or self.state.current is not None
        # A question answered from knowledge is a matter resolved, as much as a finished flow.
        done = [t.intent for t in self.state.finished if t.status == "done"] + self.knowledge_answered
        if reason == "caller_hangup" and (pending or not done) and not self._hangup:
            return "abandoned"
        if done and not pending:
            return "resolved"
        return "unresolved"

    # ------------------------------------------------------------------ helpers

    def _all_tasks(self) -> list[Task]:
        st = self.state
        return [*st.finished, *([st.current] if st.current else []), *st.agenda]

    def _signals(self, signals: TurnSignals) -> None:
        st = self.state
        f = signals.frustration
        if f is not None and f == f:  # not NaN
            st.frustration_last = min(1.0, max(0.0, float(f)))
            st.frustration_max = max(st.frustration_max, st.frustration_last)
        if signals.explanation:
            st.frustration_explanation = signals.explanation
        self._transcript_confidence = signals.transcript_confidence
        self._heard_words = signals.heard_words
        level = signals.level
        self._frustration_level = level
        self._frustration_trend = signals.trend
        calm = st.frustration_last >= self.engine.options.annoyed or level in ("annoyed", "frustrated")
        self._style = "calm" if calm else "default"

    def _slot_value(
        self, parse: ParseResult, slot_name: str, slot_type: str, text: str, dtmf: str | None
    ) -> Any:
        for hit in parse.intents:
            if hit.slots.get(slot_name) is not None:
                return hit.slots[slot_name]
        if slot_type == "reason":
            # Any non-empty answer is a reason; a bare yes/no is not ("wrong size" is a reason, not a "no").
            names = {i.name for i in parse.intents}
            if text and any(e.type == "reason" for e in parse.entities):
                return text
            return text if text and not (names & {"affirm", "deny", "repeat", "goodbye"}) else None
        return self._entity_value(parse, slot_type, text, dtmf)

    def _answers_expected_slot(self, parse: ParseResult) -> bool:
        """The utterance holds a value for the slot the bot asked for (then "ok bye" is not a goodbye yet)."""
        if self.state.expect is not Expect.SLOT or self.state.expect_slot is None:
            return False
        slot_type = self.domain.slots[self.state.expect_slot].type
        return any(e.type == slot_type for e in parse.entities)

    def _answers_in_own_words(self, text: str) -> bool:
        """The bot asked for a detail in the caller's own words (the return's reason) and the turn is not worded as a
        question: it is the answer, even when it resembles a public question ("the box was crushed" is the knowledge
        base's damaged-item question, but here it is the reason; "was the box crushed?" is still a question)."""
        st = self.state
        return st.expect is Expect.SLOT and st.expect_slot is not None \
            and self.domain.slots[st.expect_slot].type in FREE_TEXT_SLOTS and not QUESTION.search(text)

    def _entity_value(self, parse: ParseResult, slot_type: str, text: str, dtmf: str | None) -> Any:
        for ent in parse.entities:
            if ent.type == slot_type:
                return ent.value
        if dtmf and slot_type in ("order_number", "pin", "phone", "postcode"):
            digits = dtmf.strip("#*")
            if digits.isdigit():
                return digits
        found: Entity | None = self.engine.nlu.extract(text, slot_type, today=self.clock().date()) if text else None
        return found.value if found is not None else None

    def _yes_no(self, parse: ParseResult, text: str, dtmf: str | None) -> bool | None:
        if dtmf in ("1", "2"):
            return dtmf == "1"
        names = [i.name for i in parse.intents]
        if "affirm" in names and "deny" not in names:
            return True
        if "deny" in names and "affirm" not in names:
            return False
        val = self._entity_value(parse, "yes_no", text, None)
        return val if isinstance(val, bool) else None

    def _text(self, prompt: str | list[str]) -> str:
        if isinstance(prompt, list):
            return self.say_.rng.choice(prompt)
        return prompt

    def _say(self, name: str, **values: Any) -> None:
        # The name the caller ID matched is account data: spoken only once the caller is verified.
        first_name = (self.state.first_name or "") if self.state.verified else ""
        vals: dict[str, Any] = {"first_name": first_name, **values}
        self._out.append(self.say_.render(name, self._style, vals))

    def _fire(self, what: str) -> None:
        self._fired.append(what)

    def _begin_turn(self) -> None:
        self._knowledge_trace = []
        self._out = []
        self._fired = []
        self._secrets = _Secrets()
        self._complaint = None
        self._transcript_confidence = None
        self._heard_words = ()
        self._foreign = None
        self._trace_extra = {}
        self._acked_now = False
        self._declined_now = False

    def _expects_secret_slot(self) -> bool:
        st = self.state
        return st.expect is Expect.SLOT and st.expect_slot is not None and \
            self.domain.slots[st.expect_slot].type in SECRET_TYPES

    def _mask_slots(self, slots: dict[str, Any], everything: bool = False) -> dict[str, Any]:
        """Slot values with those of secret slot types (or, for an answer to a verification question, all)
        replaced by MASK."""
        return {
            k: MASK if v is not None and (everything or (k in self.domain.slots and
                                                         self.domain.slots[k].type in SECRET_TYPES)) else v
            for k, v in slots.items()
        }

    def _finish_turn(self, parse: ParseResult | None, extra: dict[str, Any]) -> BotReply:
        st = self.state
        text = " ".join(t for t in self._out if t)
        if text:
            st.last_bot_text = text
        action = "continue"
        if st.handed_off:
            action = "handoff"
            self.outcome = "handoff"
        elif st.ended:
            action = "hangup"
        secrets = self._secrets
        intents = [
            {"name": i.name, "confidence": round(float(i.confidence), 3),
             "slots": self._mask_slots(jsonable(i.slots), everything=secrets.whole)}
            for i in (parse.intents if parse else [])
        ]
        trace: dict[str, Any] = {
            "expect": st.expect.value,
            "expect_slot": st.expect_slot if st.expect is Expect.SLOT else None,
            "steps": list(self._fired),
            "verified": st.verified,
            "frustration": round(st.frustration_last, 3),
            "frustration_explanation": st.frustration_explanation,
            "style": self._style,
            **extra,
        }
        if parse is not None:
            trace["nlu"] = {
                "normalized": secrets.mask(parse.normalized),
                "scores": {k: round(float(v), 3) for k, v in parse.scores.items()},
                "entities": [
                    {"type": e.type, "value": MASK, "text": MASK} if secrets.covers(e) else
                    {"type": e.type, "value": jsonable(e.value), "text": e.text} for e in parse.entities
                ],
                "segments": [secrets.mask(segment) for segment in parse.segments],
                "negated": parse.negated,
            }
            if self._heard_words:
                # How surely each word was heard, and each intent's clause; a turn with a secret keeps no words.
                trace["nlu"]["heard_words"] = [[w.text if secrets.heard is None else MASK, w.probability]
                                               for w in self._heard_words]
                trace["nlu"]["heard"] = {h.name: h.heard for h in parse.intents if h.heard is not None}
                if parse.doubted:
                    trace["nlu"]["doubted"] = [{"name": h.name, "heard": h.heard} for h in parse.doubted]
        if self._knowledge_trace:
            trace["knowledge"] = list(self._knowledge_trace)
        if st.handed_off:
            trace["handoff_reason"] = self._handoff_reason
        if self._transcript_confidence is not None:
            trace["transcript_confidence"] = round(self._transcript_confidence, 3)
        trace.update(self._trace_extra)
        expects = None
        if action == "continue" and st.question is not None and st.question.expect is st.expect:
            expects = st.question.expects
        self.transcript.append(
            {"speaker": "bot", "text": text, "at": self.clock().isoformat(), "intents": intents, "trace": trace}
        )
        return BotReply(
            text=text,
            intents=intents,
            action=action,
            handoff=self.handoff_packet if st.handed_off else None,
            style=self._style,
            trace=trace,
            outcome=self.outcome if action != "continue" else None,
            heard=secrets.heard,
            keys_masked=secrets.keys,
            expects=expects,
            recording_declined=self._declined_now,
        )


@dataclass
class _Secrets:
    """What of one caller turn must be masked: secret entities, or (an answer to a verification question
    holding a date, number or code) the whole of it."""

    values: tuple[str, ...] = ()  # texts of secret entities, as in the normalised text
    whole: bool = False
    keys: bool = False
    heard: str | None = None  # the caller's words as they may be kept; None: nothing to mask

    @classmethod
    def of(cls, text: str, parse: ParseResult, *, verifying: bool, keys: bool) -> _Secrets:
        secret = [e for e in parse.entities if e.type in SECRET_TYPES and e.text and e.end > e.start]
        whole = verifying and any(e.type not in NOT_SECRET_IN_VERIFICATION for e in parse.entities)
        values = tuple(e.text for e in secret)
        heard: str | None = None
        if whole:
            heard = MASK if text else ""
        elif values:
            heard = text
            for value in values:
                # digits as the caller wrote them: "4111 1111-1111" is the normalised "41111111111"
                pattern = r"[\s,.-]*".join(re.escape(c) for c in value)
                heard, found = re.subn(pattern, MASK, heard, flags=re.IGNORECASE)
                if not found:  # said in words ("four three two one"): nothing of the turn is kept
                    return cls(values, whole, keys, MASK)
        return cls(values, whole, keys, heard)

    def covers(self, entity: Entity) -> bool:
        return self.whole or entity.type in SECRET_TYPES

    def mask(self, text: str) -> str:
        if self.whole:
            return MASK if text else text
        for value in self.values:
            text = text.replace(value, MASK)
        return text
