"""Who is calling: the phone-number check and the identity factors (postcode, date of birth, PIN) asked before
an account action; only a real answer of the asked kind counts as a failed attempt."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dialogs.db import repository
from dialogs.manager import asides, flows
from dialogs.manager.repair import QUESTION
from dialogs.manager.state import NOT_REQUESTS, Expect
from dialogs.nlu import IntentHit, ParseResult
from dialogs.nlu.parser import KEEP_OWN_PROB

# Words that name an identity factor: a clause holding a value and one of them ("my postcode is 94107", "I was born
# on ...", "my pin is 4321") answers the identity question, whatever request the NLU reads in it ...
FACTOR_WORDS = re.compile(r"\b(?:post ?codes?|zip(?: ?codes?)?|born|birth\w*|pin)\b", re.IGNORECASE)
# ... unless it asks to change one ("change my postcode to 60614", "my new zip code is ...").
CHANGE_WORDS = re.compile(r"\b(?:change|changed|update|new|moved|wrong)\b", re.IGNORECASE)
# Said before the identity question is asked again when the caller repeated the request it is for (the domain's
# ``verify_request_noted`` response if it has one).
NOTED = "I'll help with {what} as soon as I've confirmed who you are."

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession

def on_verify_phone(dlg: DialogSession, parse: ParseResult, text: str, dtmf: str | None) -> bool:
    """The answer to the phone-number question. True if handled."""
    st = dlg.state
    phone = dlg._entity_value(parse, "phone", text, dtmf)
    if phone is None and dtmf:
        phone = dtmf.strip("#*")
    if phone is None:
        if [i for i in parse.intents if i.name not in NOT_REQUESTS]:
            return False
        return not_an_answer(dlg, text)
    with dlg.engine.database.session() as s:
        customer = repository.find_customer_by_phone(s, str(phone))
        if customer is not None:
            st.customer_id = customer.id
            st.first_name = customer.first_name
            st.customer_name = f"{customer.first_name} {customer.last_name}"
    if customer is None:
        dlg._fire("no account for that phone number")
        return verification_failed(dlg, "verify_unknown_phone")
    dlg._fire("account found by phone number")
    # "my number is ... and I also want to reset my password": it waits, without any value of this turn.
    queued = asides.queue(dlg, asides.requests_in(dlg, parse), keep_values=False)
    dlg._say("verify_ask_factor")
    dlg._asked(Expect.VERIFY_FACTOR, response="verify_ask_factor")
    asides.announce(dlg, queued)
    return True


def on_verify_factor(dlg: DialogSession, parse: ParseResult, text: str, dtmf: str | None) -> bool:
    """The answer to an identity question (postcode, date of birth, PIN). True if handled."""
    st = dlg.state
    assert st.customer_id is not None
    current = st.current.intent if st.current else None
    requests = said_requests(dlg, parse)
    others = [i for i in requests if i.name != current]
    mine = [i for i in requests if i.name == current]
    if mine and not others:
        # "where is my order 94107" with that order pending: the number is the order's, never an identity answer,
        # even when it happens to be the postcode. Only a clause of its own beside the request may answer.
        answer = " ".join(asides.answer_segments(parse, mine))
        part = dlg.engine.nlu.parse(answer, today=dlg.clock().date()) if answer else None
        candidates = factor_candidates(dlg, part, answer, dtmf) if part is not None or dtmf else []
        keep_own_values(dlg, parse, mine[0])
        if candidates:
            dlg._fire("identity answer with the pending request said again beside it")
            return check_factor(dlg, candidates)
        return request_said_again(dlg)
    if others:
        # A new request: numbers in its words are never a postcode or PIN. Only a clause of its own beside it
        # ("my date of birth is ..., and where is my refund") may answer; the request then waits, keeping only the
        # values said in its own clause (the others may be the identity answer), and still needs the verification.
        answer = " ".join(asides.answer_segments(parse, others))
        if not answer or dtmf:
            return False
        part = dlg.engine.nlu.parse(answer, today=dlg.clock().date())
        candidates = [] if said_requests(dlg, part) else factor_candidates(dlg, part, answer, None)
        if not candidates:
            return False
        dlg._fire("identity answer with a request beside it")
        queued = asides.queue(dlg, others, keep_values=False)
        for task in queued:
            hit = next(h for h in others if h.name == task.intent)
            for name, value in own_values(dlg, parse, hit).items():
                task.slots[name] = value
                dlg._fire(f"{name} of {task.intent} said in its own clause: kept")
        done = check_factor(dlg, candidates)
        asides.announce(dlg, queued)
        return done
    candidates = factor_candidates(dlg, parse, text, dtmf)
    if not candidates:
        if requests:
            return False
        return not_an_answer(dlg, text)
    return check_factor(dlg, candidates)


def said_requests(dlg: DialogSession, parse: ParseResult) -> list[IntentHit]:
    """The requests the caller made in an answer to an identity question. A clause holding a value is one only if its
    words say the request without the value (as surely as the NLU's KEEP_OWN_PROB: "where is my order 94107" is an
    order check, "it's 94107" and "my pin is 4321" are answers whatever the NLU reads in them) and it does not name an
    identity factor ("my postcode is 94107" answers; "change my postcode to 60614" asks)."""
    out = []
    for hit in parse.intents:
        if hit.name in NOT_REQUESTS or hit.confidence < 0.5:
            continue
        clause = hit.clause or parse.normalized
        values = [e.text for e in parse.entities if e.text and e.text in clause and e.type not in ("yes_no", "reason")]
        if values:
            if FACTOR_WORDS.search(clause) and not CHANGE_WORDS.search(clause):
                continue
            rest = clause
            for v in values:
                rest = rest.replace(v, " ")
            own = dlg.engine.nlu.parse(" ".join(rest.split()), today=dlg.clock().date()) if rest.strip() else None
            if own is None or not any(h.name == hit.name and h.confidence >= KEEP_OWN_PROB for h in own.intents):
                continue
        out.append(hit)
    return out


def own_values(dlg: DialogSession, parse: ParseResult, hit: IntentHit) -> dict[str, Any]:
    """The values of ``hit`` said in its own clause, one of a kind there ("where is my order 45281" beside the answer
    94107): the request's, never the identity answer's. An order number beside another number of the same kind in the
    clause is not: which one is the order's is anyone's guess."""
    clause = hit.clause or parse.normalized
    own = {}
    for name, value in hit.slots.items():
        kind = dlg.domain.slots[name].type if name in dlg.domain.slots else None
        said = [e for e in parse.entities if e.type == kind and e.text and e.text in clause]
        if value is not None and len(said) == 1 and said[0].value == value:
            own[name] = value
    return own


def keep_own_values(dlg: DialogSession, parse: ParseResult, hit: IntentHit) -> None:
    """The pending request said again: its values said in its own clause (:func:`own_values`) are its new details."""
    task = dlg.state.current
    if task is None:
        return
    for name, value in own_values(dlg, parse, hit).items():
        task.slots[name] = value
        dlg._fire(f"{name} of {task.intent} said again: kept")


def request_said_again(dlg: DialogSession) -> bool:
    """The caller said the pending request again instead of an identity answer: say it waits for the check and ask
    again (not a failed attempt; after max_reprompts such turns in a row a person takes over)."""
    st = dlg.state
    if _handed_over_after_reprompts(dlg, "the pending request said again, no identity answer"):
        return True
    assert st.current is not None
    what = dlg.domain.spoken_name(st.current.intent)
    if dlg.say_.has("verify_request_noted"):
        dlg._say("verify_request_noted", what=what)
    else:
        dlg._out.append(NOTED.format(what=what))
    dlg._reask()
    return True


def factor_candidates(dlg: DialogSession, parse: ParseResult | None, text: str,
                      dtmf: str | None) -> list[tuple[str, Any]]:
    """What of an answer could be an identity factor, by method (keys are a PIN; a date is only a date of birth)."""
    methods = list(dlg.domain.verification.methods)
    candidates: list[tuple[str, Any]] = []
    if dtmf and "pin" in methods:
        candidates.append(("pin", dtmf.strip("#*")))
    if parse is None:
        return candidates
    # A date answers "date of birth" only: its digits are never also tried as a postcode or PIN.
    birthday = dlg._entity_value(parse, "date", text, None) if "date_of_birth" in methods and text else None
    if birthday is not None:
        candidates.append(("date_of_birth", birthday))
    for m in methods if birthday is None else ():
        if m == "postcode":
            v = dlg._entity_value(parse, "postcode", text, None)
            if v is not None:
                candidates.append(("postcode", v))
        elif m == "pin" and not dtmf:
            v = dlg._entity_value(parse, "pin", text, None)
            if v is not None:
                candidates.append(("pin", v))
    return candidates


def check_factor(dlg: DialogSession, candidates: list[tuple[str, Any]]) -> bool:
    """Check the identity answer's candidates against the account: verified goes on, else one failed attempt."""
    st = dlg.state
    assert st.customer_id is not None
    with dlg.engine.database.session() as s:
        for method, value in candidates:
            if repository.verify_identity(
                s, st.customer_id, method, value, now=dlg.clock(), contact_id=dlg.contact_id
            ):
                st.verified = True
                st.verified_by = method
                break
    if not st.verified:
        dlg._fire(f"verification failed ({', '.join(m for m, _ in candidates)})")
        return verification_failed(dlg, "verify_failed")
    dlg._fire(f"verified by {st.verified_by}")
    st.expect = Expect.NOTHING
    st.question = None
    st.no_match_streak = 0
    dlg._say("verify_ok")
    flows.advance(dlg)
    return True


def _handed_over_after_reprompts(dlg: DialogSession, why: str) -> bool:
    """Count a turn at the identity question that was no answer (not a failed attempt); True once max_reprompts such
    turns in a row have handed the caller to a person, False when the question is to be asked again."""
    st = dlg.state
    st.no_match_streak += 1
    dlg._fire(f"{why} ({st.no_match_streak} in a row): ask again")
    if st.no_match_streak > dlg.engine.options.max_reprompts:
        dlg._handoff("slot_not_understood")
        return True
    return False


def not_an_answer(dlg: DialogSession, text: str) -> bool:
    """ "yes", a question or words without the asked detail while verifying: not a failed attempt. The
    question is asked again; after max_reprompts such turns in a row a person takes over."""
    if _handed_over_after_reprompts(dlg, "not an answer to the verification question"):
        return True
    if QUESTION.search(text) and dlg.say_.has("answer_later"):
        dlg._say("answer_later")
    dlg._reask()
    return True


def verification_failed(dlg: DialogSession, response: str) -> bool:
    """Count one failed identity answer: say ``response``, or hand off after the limit. True: the turn is done."""
    st = dlg.state
    st.verify_attempts += 1
    limit = dlg.domain.verification.max_attempts or dlg.engine.options.max_verification_attempts
    if st.verify_attempts >= limit:
        dlg._handoff("verification_failed")
        return True
    dlg._say(response)
    return True


def start_verification(dlg: DialogSession) -> None:
    """Acknowledge the request, then ask for the phone number (caller not known) or an identity factor."""
    st = dlg.state
    if st.current is not None:
        dlg._acknowledge(st.current)
    dlg._fire("identity verification required")
    dlg._say("verify_intro")
    if st.customer_id is None:
        if dlg.caller_id and dlg.say_.has("caller_id_unknown"):
            dlg._say("caller_id_unknown")  # a browser caller has no number to match
        dlg._say("verify_ask_phone")
        dlg._asked(Expect.VERIFY_PHONE, response="verify_ask_phone")
    else:
        dlg._say("verify_ask_factor")
        dlg._asked(Expect.VERIFY_FACTOR, response="verify_ask_factor")
