"""An unsure request is checked before it runs ("Just to check: you'd like to cancel your subscription?"):
"yes" goes on, "no" asks again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dialogs.domain.schema import Domain
from dialogs.manager import asides, flows
from dialogs.manager.state import ACTS, NOT_REQUESTS, Expect, Hit
from dialogs.nlu import IntentHit, ParseResult
from dialogs.nlu.entities import MASK, SECRET_TYPES

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession

# Said before the check when the words came from speech the recogniser took for another language (the domain's
# ``check_misheard`` response if it has one).
MISHEARD = "Sorry, I may not have caught that."


@dataclass(frozen=True)
class ForeignReading:
    """Speech the recogniser rejected only because it sounded like another ``language`` ("th"), with the words it
    decoded in the bot's language anyway (``text``): never acted on, at most offered back as a question."""

    language: str
    text: str


def proposed_request(parse: ParseResult, sure_from: float) -> Hit | None:
    """The one request of ``parse``, without its slot values, if the NLU scores it ``sure_from`` or more (0 turns
    this off): None if there is no request (dialog acts and public questions are none), two or more (a garbled
    reading that mixes requests; asking about its surest cost more foreign speech than it gave accented English back,
    docs/understanding.md), or a request for a person."""
    requests = [h for h in parse.intents if h.name not in NOT_REQUESTS]
    if sure_from <= 0 or len(requests) != 1 or requests[0].name == "speak_to_agent" \
            or requests[0].confidence < sure_from:
        return None
    return Hit(requests[0].name, requests[0].confidence, {})


def unsure_request(parse: ParseResult, domain: Domain, confirm_from: float, threshold: float) -> Hit | None:
    """The request the dialog asks about ("Just to check: ...?") in a turn in which the NLU found none: the one it held
    back because its words were heard unsurely (the surest of them), or, when nothing at all was understood, the
    domain's best-scoring request if it scored between ``confirm_from`` (dialog.confirm_intent_from) and the NLU
    ``threshold`` (never a request for a person: that one is handed over, not checked). None otherwise."""
    if any(h.name not in NOT_REQUESTS for h in parse.intents):
        return None
    held = [h for h in parse.doubted if h.name in domain.intents and h.name not in ACTS]
    if held:
        surest = max(held, key=lambda h: h.heard or 0.0)
        return Hit(surest.name, surest.confidence, {})
    if [i.name for i in parse.intents] != ["out_of_scope"]:
        return None
    ranked = sorted(((v, k) for k, v in parse.scores.items()
                     if k in domain.intents and k not in ACTS and k != "speak_to_agent"), reverse=True)
    if not ranked or not confirm_from <= ranked[0][0] < threshold:
        return None
    score, name = ranked[0]
    slot_types = {n: domain.slots[n].type for n in domain.intents[name].slots}
    return Hit(name, score, {n: e.value for n, kind in slot_types.items() for e in parse.entities if e.type == kind})


def check_on_doubt(dlg: DialogSession, parse: ParseResult, tasks: Sequence[IntentHit]) -> bool:
    """Confirm instead of acting on a guess: the recogniser was unsure of the words (of the whole transcript, or of
    every word of the requests' clauses), the NLU held back a request whose words were all heard unsurely and the turn
    has no other, or the best request scored between dialog.confirm_intent_from and the NLU threshold."""
    st = dlg.state
    opts = dlg.engine.options
    threshold = getattr(dlg.engine.nlu, "threshold", 1.0)
    doubt: list[IntentHit | Hit] = []
    why = ""
    heard = [t.heard for t in tasks if t.heard is not None]
    held = [h for h in parse.doubted if h.name in dlg.domain.intents and h.name not in ACTS]
    if tasks and (unsure := asides.heard_unsurely(dlg, max(heard, default=None))) is not None:
        doubt = list(tasks)
        why = unsure
    elif not tasks and (hit := unsure_request(parse, dlg.domain, opts.confirm_intent_from, threshold)) is not None:
        doubt = [hit]
        held_back = next((h for h in held if h.name == hit.name), None)
        why = f"request {hit.name} held back: its words heard at {held_back.heard or 0.0:.2f}" \
            if held_back is not None else \
            f"intent {hit.name} scored {hit.confidence:.2f}, between {opts.confirm_intent_from} and {threshold}"
    if not doubt:
        return False
    st.doubt = doubt
    st.no_match_streak = 0
    dlg._fire(f"confirm on doubt: {why}")
    dlg._trace_extra["confirm_reason"] = why
    _ask_check(dlg, doubt[0].name)
    return True


def check_foreign_reading(dlg: DialogSession, reading: ForeignReading) -> bool:
    """Speech rejected as another language in answer to no question: if its reading in the bot's language is one
    request the NLU is sure of (dialog.confirm_foreign_guess_from), ask whether the caller meant it ("Sorry, I may not
    have caught that. Just to check: ...?") instead of "didn't catch that". Nothing of the reading is acted on or
    kept but the request's name; the turn still counts as a miss until the caller says yes. True if asked."""
    parse = dlg.engine.nlu.parse(reading.text, today=dlg.clock().date())
    sure_from = dlg.engine.options.confirm_foreign_guess_from
    hit = proposed_request(parse, sure_from)
    if hit is not None and hit.name not in dlg.domain.intents:
        hit = None
    secret = any(e.type in SECRET_TYPES for e in parse.entities)
    dlg._trace_extra["foreign_reading"] = {
        "language": reading.language, "text": MASK if secret else reading.text,
        "intents": {h.name: round(float(h.confidence), 3) for h in parse.intents},
        "asked": hit.name if hit is not None else None,
    }
    if hit is None:
        dlg._fire(f"language {reading.language} guessed: its reading is no request sure from {sure_from}")
        return False
    dlg.state.doubt = [hit]
    dlg._fire(f"language {reading.language} guessed: ask whether {hit.name} was meant")
    dlg._trace_extra["confirm_reason"] = f"language {reading.language} guessed; reading {hit.name} at " \
                                         f"{hit.confidence:.2f} >= {sure_from}"
    if dlg.say_.has("check_misheard"):
        dlg._say("check_misheard")
    else:
        dlg._out.append(MISHEARD)
    _ask_check(dlg, hit.name)
    return True


def _ask_check(dlg: DialogSession, name: str) -> None:
    """Ask "Just to check: ...?" about request ``name`` (the domain's check_<name> response, or check_intent)."""
    if dlg.say_.has(f"check_{name}"):
        dlg._say(f"check_{name}")
        dlg._asked(Expect.CHECK_INTENT, response=f"check_{name}")
    else:
        what = dlg.domain.spoken_name(name)
        dlg._say("check_intent", what=what)
        dlg._asked(Expect.CHECK_INTENT, response="check_intent", values={"what": what})


def on_check_intent(dlg: DialogSession, parse: ParseResult, text: str, dtmf: str | None) -> bool:
    """The answer to "Just to check: you'd like to ...?". True if handled."""
    st = dlg.state
    held, st.doubt = st.doubt, []
    tasks = [i for i in parse.intents if i.name not in ACTS]
    yes = dlg._yes_no(parse, text, dtmf)
    st.expect = Expect.NOTHING
    st.question = None
    if yes is True:
        dlg._fire("caller confirmed the request")
        st.no_match_streak = 0  # understood after all (a request asked about after speech taken for another language)
        dlg._add_tasks(held, interrupt=st.current is not None)
        # "yes, and also reset my password": the checked request first, the other one after it.
        queued = asides.queue(dlg, [t for t in tasks if t.name not in NOT_REQUESTS])
        flows.advance(dlg)
        asides.announce(dlg, queued)
        return True
    if yes is False and not tasks:
        dlg._fire("not that request: ask again (no hand-off)")
        st.also = None  # a second request heard beside the one the caller just said no to
        dlg._say("check_intent_no" if dlg.say_.has("check_intent_no") else "how_can_i_help")
        return True
    return False  # another request or words: read as a new turn
