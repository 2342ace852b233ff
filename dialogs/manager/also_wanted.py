"""A second request heard too unsurely to act on, beside a request the NLU is sure of ("where's my parcel and I was
built for express shipping"): never acted on, asked about once the sure requests are done ("Did you also have a
question about your bill?"). "yes" puts it on the agenda like any second request, "no" drops it, anything else is
read as a new turn."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dialogs.domain.schema import Domain
from dialogs.manager import flows
from dialogs.manager.state import NOT_REQUESTS, Expect, Hit, Unsure
from dialogs.nlu import ParseResult
from dialogs.nlu.entities import MASK

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession

# Asked when the domain has neither an also_<intent> nor an also_intent response.
ASK = "Did you also want help with {what}?"


def also_request(parse: ParseResult, domain: Domain, ask_from: float, threshold: float) -> Hit | None:
    """The request the dialog asks about after the sure ones of ``parse``: the surest clause the NLU scored as a
    request from ``ask_from`` (dialog.also_ask_from) up to its ``threshold``, in a turn with at least one request at
    or above it, not one of those and not a request for a person; without slot values (a garbled clause's values are
    guesses, and nothing heard is read back). None otherwise, and always with ``ask_from`` 0."""
    sure = {h.name for h in parse.intents if h.name not in NOT_REQUESTS}
    if ask_from <= 0 or not sure:
        return None
    unsure = [h for h in parse.below if h.name not in sure and h.name in domain.intents and h.name != "speak_to_agent"]
    if not unsure or not ask_from <= unsure[0].confidence < threshold:
        return None
    return Hit(unsure[0].name, unsure[0].confidence, {})


def note(dlg: DialogSession, parse: ParseResult) -> None:
    """Keep this turn's unsure second request, if any (and none is kept yet), to ask about once the agenda is done;
    the trace says why (its score, the band, its words, masked if the turn held a secret)."""
    st = dlg.state
    ask_from = dlg.engine.options.also_ask_from
    threshold = getattr(dlg.engine.nlu, "threshold", 1.0)
    hit = also_request(parse, dlg.domain, ask_from, threshold)
    if hit is None or st.also is not None:
        return
    clause = next((h.clause for h in parse.below if h.name == hit.name), "")
    words = MASK if dlg._secrets.heard is not None else clause
    why = f"{hit.name} scored {hit.confidence:.2f}, from {ask_from} up to the threshold {threshold}, beside a sure " \
          f"request: {words!r}"
    st.also = Unsure(hit.name, hit.confidence, why)
    dlg._fire(f"also heard unsurely: {hit.name} ({hit.confidence:.2f}); asked once the requests are done")
    dlg._trace_extra["also_heard"] = {"name": hit.name, "score": round(hit.confidence, 3), "words": words}


def ask(dlg: DialogSession) -> bool:
    """With the agenda done, ask about the kept unsure request instead of "anything else?" (unless the caller has
    asked for it since). True if asked."""
    st = dlg.state
    unsure = st.also
    if unsure is None:
        return False
    if any(t.intent == unsure.name for t in dlg._all_tasks()):
        st.also = None
        dlg._fire(f"also {unsure.name}: asked for since, not asked about")
        return False
    dlg._fire(f"ask whether {unsure.name} was also wanted")
    dlg._trace_extra["also_reason"] = unsure.why
    ask_whether(dlg, unsure.name, f"also_{unsure.name}", "also_intent", ASK)
    return True


def ask_whether(dlg: DialogSession, name: str, own: str, general: str, default: str) -> None:
    """Ask whether the caller wants request ``name`` and wait for the yes or no (:func:`on_answer`): the domain's
    ``own`` response for it, else its ``general`` one naming the request, else ``default`` (with ``{what}``)."""
    if dlg.say_.has(own):
        dlg._say(own)
        dlg._asked(Expect.ALSO_WANTED, response=own)
        return
    what = dlg.domain.spoken_name(name)
    if dlg.say_.has(general):
        dlg._say(general, what=what)
        dlg._asked(Expect.ALSO_WANTED, response=general, values={"what": what})
    else:
        dlg._out.append(default.format(what=what))
        dlg._asked(Expect.ALSO_WANTED)


def on_answer(dlg: DialogSession, parse: ParseResult, text: str, dtmf: str | None) -> bool:
    """The answer to "Did you also want ...?". True if handled; False (the request dropped) reads it as a new turn."""
    st = dlg.state
    unsure, st.also = st.also, None
    st.expect = Expect.NOTHING
    st.question = None
    if unsure is None:
        return False
    tasks = [i for i in parse.intents if i.name not in NOT_REQUESTS]
    yes = dlg._yes_no(parse, text, dtmf)
    if yes is True:
        dlg._fire(f"caller also wants {unsure.name}")
        st.no_match_streak = 0
        dlg._add_tasks([Hit(unsure.name, unsure.confidence, {}), *tasks], interrupt=False)
        flows.advance(dlg)
        return True
    if yes is False and not tasks:
        dlg._fire(f"caller does not want {unsure.name}: dropped")
        dlg._say("anything_else")
        dlg._asked(Expect.ANYTHING_ELSE, response="anything_else")
        return True
    dlg._fire(f"no answer about {unsure.name}: dropped, read as a new turn")
    return False
