"""Confirmations and their repair: "yes" runs the step, "no, it's 21 Oak Street" replaces the value and
confirms again, "no" alone asks what to change, "the other order" picks the other of two."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dialogs.manager import asides, flows
from dialogs.manager.repair import OTHER_ORDER, SLOT_LABELS, other_order, slot_named
from dialogs.manager.state import ACTS, FREE_TEXT_SLOTS, NOT_REQUESTS, Expect, Task
from dialogs.nlu import ParseResult

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession

def on_confirm(dlg: DialogSession, parse: ParseResult, text: str, dtmf: str | None) -> bool:
    """The answer to a confirmation: yes runs the step, a correction replaces the value. True if handled."""
    st = dlg.state
    task = st.current
    assert task is not None
    yes = dlg._yes_no(parse, text, dtmf)
    if yes is True:
        dlg._fire("confirmed")
        st.expect = Expect.NOTHING
        st.no_match_streak = 0
        task.step += 1
        # "yes, and can you also reset my password": the step runs, the other request waits its turn.
        queued = asides.queue(dlg, asides.requests_in(dlg, parse))
        flows.advance(dlg)
        asides.announce(dlg, queued)
        return True
    if yes is False:
        st.no_match_streak = 0
        values = corrected_values(dlg, task, parse, text, dtmf)
        others = _naming_none(dlg, task, asides.requests_in(dlg, parse, answer=_value_texts(parse, values)))
        if others and not values:
            # "no, I want to change my address": the caller rejected this request; the other one starts at once.
            dlg._fire("declined, with another request")
            dlg._say("flow_cancelled")
            asides.queue(dlg, others, at_once=True)
            flows.cancel_current(dlg, say=False)
            return True
        queued = asides.queue(dlg, others)
        correct(dlg, task, parse, text, dtmf)
        asides.announce(dlg, queued)
        return True
    tasks = [i for i in parse.intents if i.name not in NOT_REQUESTS and i.name != task.intent]
    if tasks:
        dlg._fire("new request instead of yes/no")
        dlg._add_tasks(tasks, interrupt=True)
        flows.advance(dlg)
        return True
    task.reprompts += 1
    if task.reprompts > dlg.engine.options.max_reprompts:
        dlg._handoff("not_understood")
        return True
    dlg._fire("yes/no not understood: ask again")
    flows.advance(dlg)  # says the confirmation again
    return True


def askable_slots(dlg: DialogSession, task: Task) -> dict[str, str]:
    """The details the flow asked for before where it is now: slot name -> type."""
    steps = dlg.domain.intents[task.intent].steps[:task.step]
    return {s.ask: dlg.domain.slots[s.ask].type for s in steps if s.kind == "ask" and s.ask}


def corrected_values(dlg: DialogSession, task: Task, parse: ParseResult, text: str, dtmf: str | None) -> dict[str, Any]:
    """New values the caller's words give for the request's details ("no, it's 21 Oak Street")."""
    out: dict[str, Any] = {}
    for name in dlg.domain.intents[task.intent].slots:
        kind = dlg.domain.slots[name].type
        if kind in FREE_TEXT_SLOTS:
            continue
        value = next((h.slots[name] for h in parse.intents if h.slots.get(name) is not None), None)
        if value is None:
            value = next((e.value for e in parse.entities if e.type == kind), None)
        if value is not None and value != task.slots.get(name):
            out[name] = value
    return out


def correct(dlg: DialogSession, task: Task, parse: ParseResult, text: str, dtmf: str | None) -> None:
    """A "no" at a confirmation: take the corrected value and confirm again, or ask what to change;
    only a request with nothing to change is dropped."""
    values = corrected_values(dlg, task, parse, text, dtmf)
    if values:
        take_correction(dlg, task, values)
        return
    askable = askable_slots(dlg, task)
    if not askable:
        dlg._fire("declined")
        dlg._say("flow_cancelled")
        flows.cancel_current(dlg, say=False)
        return
    if len(askable) == 1 or not dlg.say_.has("correction_ask_what"):
        ask_again(dlg, task, next(iter(askable)))
        return
    dlg._fire("declined: ask what to change")
    what = " or ".join(SLOT_LABELS.get(kind, name.replace("_", " ")) for name, kind in askable.items())
    dlg._say("correction_ask_what", what=what)
    dlg._asked(Expect.CORRECTION, response="correction_ask_what", values={"what": what})


def take_correction(dlg: DialogSession, task: Task, values: dict[str, Any]) -> None:
    """Replace the corrected details and go on from just after the step that first asked for one of them:
    the flow's checks run again on the new values, so the confirmation reads back what will be stored."""
    dlg._fire("corrected " + ", ".join(values) + ": confirm again")
    task.slots.update(values)
    steps = dlg.domain.intents[task.intent].steps
    asked = [i for i, s in enumerate(steps[:task.step]) if s.kind == "ask" and s.ask in values]
    if asked:
        task.step = asked[0] + 1
    dlg.state.expect = Expect.NOTHING
    flows.advance(dlg)


def ask_again(dlg: DialogSession, task: Task, slot: str) -> None:
    """Forget one detail and go back to the step that asks for it."""
    dlg._fire(f"correct {slot}")
    task.slots.pop(slot, None)
    steps = dlg.domain.intents[task.intent].steps
    task.step = next((i for i, s in enumerate(steps) if s.ask == slot), task.step)
    if dlg.say_.has("correction_ask_slot"):
        dlg._say("correction_ask_slot")
    dlg.state.expect = Expect.NOTHING
    flows.advance(dlg)


def _naming_none(dlg: DialogSession, task: Task, hits: list[Any]) -> list[Any]:
    """``hits`` without those whose clause names a detail of ``task`` ("the reason is ..." is a correction, whatever
    request the NLU read in it)."""
    askable = askable_slots(dlg, task)
    return [h for h in hits if not (h.clause and slot_named(h.clause, askable) is not None)]


def _value_texts(parse: ParseResult, values: dict[str, Any]) -> list[str]:
    """The words that said ``values`` (the entities holding them): the answer, not a request."""
    said = [str(v) for v in values.values()]
    return [e.text for e in parse.entities if e.text and (e.value in values.values() or str(e.value) in said)]


def on_correction(dlg: DialogSession, parse: ParseResult, text: str, dtmf: str | None) -> bool:
    """The answer to "What should I change?" (a request said beside it waits its turn). True if handled."""
    st = dlg.state
    task = st.current
    if task is None:
        return False
    values = corrected_values(dlg, task, parse, text, dtmf)
    if values:
        queued = asides.queue(dlg, asides.requests_in(dlg, parse, answer=_value_texts(parse, values)))
        take_correction(dlg, task, values)
        asides.announce(dlg, queued)
        return True
    askable = askable_slots(dlg, task)
    # The clause that names the detail ("the reason") is the answer, whatever request the NLU read in it.
    hits = [h for h in parse.intents if h.name not in ACTS]
    named = [h for h in hits if h.clause and slot_named(h.clause, askable) is not None]
    slot = slot_named(" ".join(asides.answer_segments(parse, [h for h in hits if h not in named])) or text, askable)
    if slot is not None:
        queued = asides.queue(dlg, [h for h in asides.requests_in(dlg, parse) if h not in named])
        ask_again(dlg, task, slot)
        asides.announce(dlg, queued)
        return True
    if [i for i in parse.intents if i.name not in ACTS]:
        return False
    if "deny" in [i.name for i in parse.intents] or re.search(r"\b(?:nothing|cancel|forget it)\b", text, re.I):
        dlg._fire("nothing to change: cancelled")
        dlg._say("flow_cancelled")
        flows.cancel_current(dlg, say=False)
        return True
    task.reprompts += 1
    if task.reprompts > dlg.engine.options.max_reprompts:
        dlg._handoff("not_understood")
        return True
    dlg._reask()
    return True


def corrects_to_other_order(parse: ParseResult) -> bool:
    """ "No, I meant the other order", "the other one": the other order named as a correction, the turn opening with
    it or with a no before it; not a request about it said after an answer ("it was damaged and where is my other
    order" gives the reason and asks about the other order, "yes, and where is my other order" confirms first)."""
    denials = {h.clause for h in parse.intents if h.name == "deny"}
    for segment in parse.segments:
        if OTHER_ORDER.search(segment):
            return True
        if segment not in denials:
            return False
    return True  # words the segments do not show ("the other one" in a turn read as nothing): as before


def the_other_order(dlg: DialogSession) -> str | None:
    """The verified caller's other order than the one of the request on hand, when they have exactly two."""
    st = dlg.state
    task = st.current if st.current is not None and st.current.slots.get("order_id") else None
    if not st.verified or st.customer_id is None or task is None:
        return None
    with dlg.engine.database.session() as s:
        return other_order(s, st.customer_id, str(task.slots["order_id"]))


def take_other_order(dlg: DialogSession) -> bool:
    """ "No, I meant the other order": the caller's one other order replaces the one just used."""
    st = dlg.state
    if not st.verified or st.customer_id is None:
        return False
    task = st.current if st.current is not None and st.current.slots.get("order_id") else next(
        (t for t in reversed(st.finished) if t.slots.get("order_id")), None)
    if task is None:
        return False
    with dlg.engine.database.session() as s:
        other = other_order(s, st.customer_id, str(task.slots["order_id"]))
    if other is None:
        return False
    dlg._fire(f"the other order: {other}")
    if dlg.say_.has("correction_other_order"):
        dlg._say("correction_other_order", order_id=other)
    if task is st.current:
        task.slots["order_id"] = other
        st.expect = Expect.NOTHING
    else:
        again = Task(intent=task.intent, slots={**task.slots, "order_id": other}, acknowledged=True)
        st.agenda.insert(0, again)
    flows.advance(dlg)
    return True
