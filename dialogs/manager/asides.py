"""A request said inside an answer ("yes, and can you also reset my password", "it's 45281, and I also want to change
my address", "my date of birth is ... and where is my refund"): the answer is used for the bot's question and the
request is queued, never lost.

The rules are the first turn's: it waits after the current request (a request for a person is handed over at once by
the session before any question is read; a request said while rejecting the current one starts at once); a request
heard unsurely (the same transcript and word doubt as the first turn's "Just to check") is not queued but asked about
once the agenda is done ("Did you also want ...?"); a request needing verification still waits for it. A request said
in an answer to an identity question keeps none of that turn's values (they may be the identity answer). Where the
bot's next reply would otherwise be silent about it, it says so ("I'll help with your password after this."), and when
it moves on to it after another request it says that too ("Now, your password.").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from dialogs.manager.repair import OTHER_ORDER
from dialogs.manager.state import NOT_REQUESTS, Hit, Task, Unsure
from dialogs.nlu import IntentHit, ParseResult

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession

# Said when the domain has no ``queued_ack`` response.
QUEUED = "I'll help with {what} after this."
# Said when the bot moves on to a request that waited, after another (the domain's ``queued_next`` response if any).
QUEUED_NEXT = "Now, {what}."


def requests_in(dlg: DialogSession, parse: ParseResult, answer: Iterable[str] = ()) -> list[Any]:
    """The requests of ``parse`` besides the current one, leaving out those whose clause holds a text of ``answer``
    (the words that answered the question: "the order is 12034" read as an order request is the answer)."""
    st = dlg.state
    current = st.current.intent if st.current is not None else None
    texts = [a.lower() for a in answer if a]
    return [h for h in parse.intents
            if h.name not in NOT_REQUESTS and h.name != current and h.name in dlg.domain.intents
            and not any(a in (h.clause or "").lower() for a in texts)]


def answer_segments(parse: ParseResult, hits: list[Any]) -> list[str]:
    """The clauses of ``parse`` that are no request of ``hits``: where the answer to the question is."""
    claimed = {h.clause for h in hits if h.clause}
    return [s for s in parse.segments if s not in claimed]


def heard_unsurely(dlg: DialogSession, heard: float | None) -> str | None:
    """Why this turn's request was heard too unsurely to act on (the whole transcript under
    dialog.confirm_transcript_below, or its words, ``heard``, under dialog.confirm_heard_below), None if it was not:
    the one test of the first turn's "Just to check" (doubt.py) and of a request said inside an answer."""
    opts = dlg.engine.options
    tc = dlg._transcript_confidence
    if tc is not None and tc < opts.confirm_transcript_below:
        return f"transcript confidence {tc:.2f} < {opts.confirm_transcript_below}"
    if heard is not None and heard < opts.confirm_heard_below:
        return f"words of the request heard at {heard:.2f} < {opts.confirm_heard_below}"
    return None


def queue(dlg: DialogSession, hits: Sequence[IntentHit | Hit], *, at_once: bool = False,
          keep_values: bool = True) -> list[Task]:
    """Put requests said inside an answer on the agenda: after the current request, or (``at_once``) before
    anything else. ``keep_values`` False drops the slot values they carry (an answer to an identity question).
    A request heard unsurely is kept to ask about once the agenda is done instead. Returns the tasks queued."""
    st = dlg.state
    known = {t.intent: t for t in [*st.agenda, *([st.current] if st.current is not None else [])]}
    new: list[Task] = []
    for hit in hits:
        if hit.name not in dlg.domain.intents or hit.name in NOT_REQUESTS:
            continue
        slots = {k: v for k, v in hit.slots.items() if v is not None} if keep_values else {}
        if keep_values and "order_id" in dlg.domain.intents[hit.name].slots and "order_id" not in slots \
                and OTHER_ORDER.search(hit.clause or ""):
            # "... and where is my other order": the caller's other order than the one on hand, if they have two.
            from dialogs.manager.corrections import the_other_order  # corrections imports this module

            other = the_other_order(dlg)
            if other is not None:
                slots["order_id"] = other
        if hit.name in known:
            known[hit.name].slots.update(slots)  # said again: its new details still count
            continue
        unsure = heard_unsurely(dlg, hit.heard)
        if unsure is not None:
            if st.also is None:
                st.also = Unsure(hit.name, float(hit.confidence), f"{hit.name} said inside an answer, heard unsurely: "
                                                                  f"{unsure}")
                dlg._fire(f"request in the answer heard unsurely: {hit.name}; asked once the requests are done")
            else:
                dlg._fire(f"request in the answer heard unsurely: {hit.name}; dropped (another is kept to ask)")
            continue
        task = Task(intent=hit.name, slots=slots, queued=True)
        known[hit.name] = task
        new.append(task)
    if not new:
        return []
    dlg._fire("queued from the answer" + (" (at once)" if at_once else "") + ": " + ", ".join(t.intent for t in new))
    st.agenda = [*new, *st.agenda] if at_once else [*st.agenda, *new]
    return new


def lead_in(dlg: DialogSession, task: Task) -> None:
    """Moving on to ``task``, which waited after another request: say so ("Now, your password."), instead of the
    request's own "Sure, I can ..." (its first question follows)."""
    what = dlg.domain.spoken_name(task.intent)
    if dlg.say_.has("queued_next"):
        dlg._say("queued_next", what=what)
    else:
        dlg._out.append(QUEUED_NEXT.format(what=what))
    dlg._fire(f"moved on to the waiting {task.intent}")
    dlg._acked_now = True


def announce(dlg: DialogSession, tasks: list[Task]) -> None:
    """Say which of ``tasks`` still wait, just before the question the reply ends with (at its end if it ends with
    none), unless the reply already took them up (started or asked about them) or the call ends or goes to a person."""
    st = dlg.state
    waiting = [t for t in tasks if t in st.agenda]
    if not waiting or st.ended or st.handed_off or (dlg.handoff_packet is not None and st.current is None):
        return
    names = [dlg.domain.spoken_name(t.intent) for t in waiting]
    what = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    if dlg.say_.has("queued_ack"):
        first_name = (st.first_name or "") if st.verified else ""
        line = dlg.say_.render("queued_ack", dlg._style, {"first_name": first_name, "what": what})
    else:
        line = QUEUED.format(what=what)
    dlg._fire("said what waits: " + ", ".join(t.intent for t in waiting))
    out = dlg._out
    asking = st.question is not None and bool(out) and st.question.text == out[-1] and st.expect is st.question.expect
    out.insert(len(out) - 1 if asking else len(out), line)
