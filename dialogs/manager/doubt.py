"""An unsure request is checked before it runs ("Just to check: you'd like to cancel your subscription?"):
"yes" goes on, "no" asks again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dialogs.manager import flows
from dialogs.manager.state import ACTS, Expect, Hit
from dialogs.nlu import ParseResult

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession

def check_on_doubt(dlg: DialogSession, parse: ParseResult, tasks: list[Any]) -> bool:
    """Confirm instead of acting on a guess: the recogniser was unsure of the words (of the whole transcript, or of
    every word of the requests' clauses), the NLU held back a request whose words were all heard unsurely and the turn
    has no other, or the best request scored between dialog.confirm_intent_from and the NLU threshold."""
    st = dlg.state
    opts = dlg.engine.options
    tc = dlg._transcript_confidence
    threshold = getattr(dlg.engine.nlu, "threshold", 1.0)
    doubt: list[Any] = []
    why = ""
    heard = [t.heard for t in tasks if getattr(t, "heard", None) is not None]
    held = [h for h in parse.doubted if h.name in dlg.domain.intents and h.name not in ACTS]
    if tasks and tc is not None and tc < opts.confirm_transcript_below:
        doubt = list(tasks)
        why = f"transcript confidence {tc:.2f} < {opts.confirm_transcript_below}"
    elif heard and max(heard) < opts.confirm_heard_below:
        doubt = list(tasks)
        why = f"words of the request heard at {max(heard):.2f} < {opts.confirm_heard_below}"
    elif not tasks and held:
        surest = max(held, key=lambda h: h.heard or 0.0)
        doubt = [Hit(surest.name, surest.confidence, {})]
        why = f"request {surest.name} held back: its words heard at {surest.heard or 0.0:.2f}"
    elif not tasks and [i.name for i in parse.intents] == ["out_of_scope"]:
        ranked = sorted(((v, k) for k, v in parse.scores.items()
                         if k in dlg.domain.intents and k not in ACTS and k != "speak_to_agent"), reverse=True)
        if ranked and opts.confirm_intent_from <= ranked[0][0] < threshold:
            score, name = ranked[0]
            slot_types = {n: dlg.domain.slots[n].type for n in dlg.domain.intents[name].slots}
            slots = {n: e.value for n, kind in slot_types.items() for e in parse.entities if e.type == kind}
            doubt = [Hit(name, score, slots)]
            why = f"intent {name} scored {score:.2f}, between {opts.confirm_intent_from} and {threshold}"
    if not doubt:
        return False
    st.doubt = doubt
    st.no_match_streak = 0
    dlg._fire(f"confirm on doubt: {why}")
    dlg._trace_extra["confirm_reason"] = why
    name = doubt[0].name
    if dlg.say_.has(f"check_{name}"):
        dlg._say(f"check_{name}")
        dlg._asked(Expect.CHECK_INTENT, response=f"check_{name}")
    else:
        intent = dlg.domain.intents[name]
        what = intent.announce or intent.description or name.replace("_", " ")
        dlg._say("check_intent", what=what)
        dlg._asked(Expect.CHECK_INTENT, response="check_intent", values={"what": what})
    return True


def on_check_intent(dlg: DialogSession, parse: ParseResult, text: str, dtmf: str | None) -> bool:
    """The answer to "Just to check: you'd like to ...?". True if handled."""
    st = dlg.state
    held, st.doubt = st.doubt, []
    tasks = [i for i in parse.intents if i.name not in ACTS]
    yes = dlg._yes_no(parse, text, dtmf)
    st.expect = Expect.NOTHING
    st.question = None
    if yes is True and not tasks:
        dlg._fire("caller confirmed the request")
        dlg._add_tasks(held, interrupt=st.current is not None)
        flows.advance(dlg)
        return True
    if yes is False and not tasks:
        dlg._fire("not that request: ask again (no hand-off)")
        dlg._say("check_intent_no" if dlg.say_.has("check_intent_no") else "how_can_i_help")
        return True
    return False  # another request or words: read as a new turn
