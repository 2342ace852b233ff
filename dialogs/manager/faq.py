"""Public questions in a turn: answered from the knowledge base without verification, before the requests of the
same sentence, or "I don't know" rather than a guess."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dialogs.manager import flows
from dialogs.manager.state import Expect
from dialogs.nlu import ParseResult
from dialogs.nlu.parser import FAQ, FAQ_MIN_SCORE, FAQ_MIN_WORDS

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession

def answer_questions(dlg: DialogSession, parse: ParseResult, *, has_tasks: bool) -> bool:
    """Public questions (the ``faq`` clauses, or an utterance nothing else claims) get their knowledge answer,
    without verification. True if the turn is done (no request follows the answers)."""
    knowledge = dlg.engine.knowledge
    faq = [i for i in parse.intents if i.name == FAQ]
    if knowledge is None or not (faq or [i.name for i in parse.intents] == ["out_of_scope"]):
        return False
    verdicts = knowledge.answer([h.clause or parse.normalized for h in faq] or [parse.normalized])
    dlg._knowledge_trace = [v.trace() for v in verdicts]
    # Two words nothing else claims ("the money") need the bar the NLU sets for a question ("opening hours" passes).
    bar = FAQ_MIN_SCORE if not faq and len(parse.normalized.split()) < FAQ_MIN_WORDS else 0.0
    answered = [v.match for v in verdicts if v.match is not None and v.match.score >= bar]
    for m in answered:
        dlg.knowledge_answered.append(m.entry.id)
        dlg._fire(f"knowledge: {m.entry.id} ({m.score:.2f})")
        dlg._out.append(m.entry.answer)
    if not answered and not faq:
        return False  # nothing the knowledge base knows: understood as before
    if not answered:
        dlg._fire("knowledge: no entry good enough")
    if has_tasks:
        return False  # the requests of the same sentence follow the answers
    st = dlg.state
    st.no_match_streak = 0
    if not answered:
        # Say so rather than guess; the response offers a colleague or something else.
        dlg._say("knowledge_unknown" if dlg.say_.has("knowledge_unknown") else "not_understood")
    if st.current is not None:
        flows.advance(dlg)  # back to the pending question
    else:
        if answered:
            dlg._say("anything_else")
        st.expect = Expect.ANYTHING_ELSE
    return True
