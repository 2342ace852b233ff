"""The remembered matter a caller confirms at the start of a call ("the return you started on Monday"): its
own state, read once the caller is verified; "yes" continues it, "no" asks what they need."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from dialogs.db.models import Return
from dialogs.db.spoken import on_day
from dialogs.db.times import naive_utc
from dialogs.manager import asides, flows
from dialogs.manager.repair import CHARGE, REFUND
from dialogs.manager.state import NOT_REQUESTS, Expect, Hit, Task
from dialogs.nlu import ParseResult

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession


@dataclass(frozen=True)
class RecalledReturn:
    order_number: str
    status: str  # requested, label_sent, received, refunded ...
    started: str  # "on Monday"


def recalled_return(session: Session, return_id: int, customer_id: int, now: datetime) -> RecalledReturn | None:
    """The return as it is now, if it belongs to the verified customer."""
    ret = session.get(Return, return_id)
    if ret is None or ret.customer_id != customer_id:
        return None
    return RecalledReturn(ret.order.number, ret.status, on_day(ret.created_at, naive_utc(now)))


def on_recall(dlg: DialogSession, parse: ParseResult, text: str, dtmf: str | None) -> bool:
    """The answer to "Are you calling about ...?": yes continues the remembered matter. True if handled."""
    st = dlg.state
    recall = st.recall or {}
    yes = dlg._yes_no(parse, text, dtmf)
    tasks = [i for i in parse.intents if i.name not in NOT_REQUESTS]
    st.expect = Expect.NOTHING
    if yes is True:
        # "yes, and can you also reset my password": the remembered matter first, the request after it.
        dlg._fire("caller confirmed the recalled matter")
        if dlg.say_.has("recall_ack"):
            dlg._say("recall_ack")
        dlg._acked_now = True
        if recall.get("kind") == "return" and recall.get("id") is not None:
            st.recall_pending = True  # its own state (not the order's delivery), told once verified
            queued = asides.queue(dlg, tasks)
            flows.advance(dlg)
        elif recall.get("order_id"):
            dlg._add_tasks([Hit("order_status", 1.0, {"order_id": recall["order_id"]})], interrupt=False)
            queued = asides.queue(dlg, tasks)
            flows.advance(dlg)
        elif tasks:
            queued = []
            dlg._add_tasks(tasks, interrupt=False)
            flows.advance(dlg)
        else:
            queued = []
            dlg._say("how_can_i_help")
        asides.announce(dlg, queued)
        return True
    if yes is False and not tasks:
        dlg._fire("not about the recalled matter")
        dlg._say("recall_no" if dlg.say_.has("recall_no") else "how_can_i_help")
        return True
    return False


def tell_recalled(dlg: DialogSession) -> None:
    """Say the state of the remembered return the caller confirmed, and record it as a finished request."""
    st = dlg.state
    st.recall_pending = False
    recall = st.recall or {}
    assert st.customer_id is not None
    with dlg.engine.database.session() as s:
        ret = recalled_return(s, int(recall["id"]), st.customer_id, dlg.clock())
    if ret is None:
        dlg._fire("recalled return not found")
        return
    st.recall_told = True
    dlg._fire(f"told recalled return ({ret.status})")
    state = f"return_state_{ret.status}"
    dlg._say("recall_return_status", order_id=ret.order_number, started=ret.started,
              return_state=dlg.say_.render(state, dlg._style) if dlg.say_.has(state) else "")
    if "return_item" in dlg.domain.intents:
        st.finished.append(Task(intent="return_item", slots={"order_id": ret.order_number}, status="done",
                                outcome="status_told", acknowledged=True))


def refund_of_recalled_return(dlg: DialogSession, text: str) -> bool:
    """ "When will I get my refund?" after the recalled return was told: the refund of that return."""
    st = dlg.state
    recall = st.recall or {}
    if not (st.recall_told and REFUND.search(text) and not CHARGE.search(text)) or st.customer_id is None:
        return False
    with dlg.engine.database.session() as s:
        ret = recalled_return(s, int(recall["id"]), st.customer_id, dlg.clock())
    name = f"return_refund_{ret.status}" if ret is not None else ""
    if ret is None or not dlg.say_.has(name):
        return False
    dlg._fire("the refund of the recalled return")
    dlg._say(name, order_id=ret.order_number)
    dlg._say("anything_else")
    dlg._asked(Expect.ANYTHING_ELSE, response="anything_else")
    return True
