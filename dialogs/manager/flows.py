"""Running the agenda: each request's flow steps (ask, confirm, action, respond, hand-off) in order, its slots
checked by the actions, and the next request when one completes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dialogs.actions.base import ACTIONS, ActionContext, ActionResult
from dialogs.manager import also_wanted, asides, recall, verification
from dialogs.manager.state import Expect, Task

if TYPE_CHECKING:
    from dialogs.manager.session import DialogSession

log = logging.getLogger("dialogs.manager.session")  # records keep the name they had before the split


def advance(dlg: DialogSession) -> None:
    """Run flows until the bot needs an answer from the caller, hands off, or has nothing left to do."""
    st = dlg.state
    for _ in range(100):  # a flow that loops forever is a bug in the domain; stop loudly
        if st.ended or st.handed_off:
            return
        if st.current is None:
            if st.recall_pending:
                # The caller said the remembered matter is why they call: tell it once they are verified.
                if not st.verified:
                    verification.start_verification(dlg)
                    return
                recall.tell_recalled(dlg)
                continue
            if not st.agenda:
                if also_wanted.ask(dlg):
                    return
                dlg._say("anything_else")
                dlg._asked(Expect.ANYTHING_ELSE, response="anything_else")
                return
            st.current = st.agenda.pop(0)
            st.current.status = "active"
            if st.announced > 1:
                st.announced -= 1
            elif st.announced == 1 and dlg.state.finished:
                dlg._say("agenda_next", next=dlg.domain.spoken_name(st.current.intent))
                st.announced = 0
            elif st.current.queued and st.finished:
                asides.lead_in(dlg, st.current)
            dlg._fire(f"start {st.current.intent}")
        task = st.current
        intent = dlg.domain.intents[task.intent]
        if intent.human_only:
            dlg._fire(f"{task.intent} is human-only")
            dlg._handoff("human_only")
            return
        if intent.verify and not st.verified:
            verification.start_verification(dlg)
            return
        if task.step >= len(intent.steps):
            complete(dlg, task)
            continue
        step = intent.steps[task.step]
        if step.when and not task.data.get(step.when):
            task.step += 1
            continue
        kind = step.kind
        if kind == "ask":
            assert step.ask is not None
            if task.slots.get(step.ask) is not None:
                task.step += 1
                continue
            slot = dlg.domain.slots[step.ask]
            dlg._acknowledge(task)
            dlg._fire(f"ask {step.ask}")
            dlg._out.append(dlg._text(slot.prompt))
            dlg._asked(Expect.SLOT, slot=step.ask)
            return
        if kind == "confirm":
            assert step.confirm is not None
            dlg._fire(f"confirm {step.confirm}")
            values = {**task.slots, **task.data}
            dlg._say(step.confirm, **values)
            dlg._asked(Expect.CONFIRM, response=step.confirm, values=values)
            return
        if kind == "action":
            assert step.action is not None
            result = run_action(dlg, step.action, task)
            if result is None:
                return
            task.outcome, task.data = result.outcome, {**task.data, **result.data}
            task.step += 1
            if result.invalid_slot:
                rewind_for(dlg, task, intent, result.invalid_slot)
                return
            continue
        if kind == "respond":
            name = step.respond
            if isinstance(name, dict):
                name = name.get(task.outcome or "", name.get("default"))
            task.step += 1
            if name:
                dlg._fire(f"respond {name}")
                dlg._say(name, **{**task.slots, **task.data})
            continue
        if kind == "handoff":
            dlg._handoff(step.handoff or "flow")
            return
    raise RuntimeError(f"flow of {st.current.intent if st.current else '?'} did not settle in 100 steps")


def run_action(dlg: DialogSession, name: str, task: Task) -> ActionResult | None:
    """Run a registered action for ``task``; None when it raised (rolled back, caller handed off)."""
    fn = ACTIONS.get(name)
    if fn is None:
        raise RuntimeError(f"domain uses action {name!r}, which is not registered")
    try:
        with dlg.engine.database.session() as s:
            ctx = ActionContext(
                session=s,
                slots=dict(task.slots),
                customer_id=dlg.verified_customer_id,
                contact_id=dlg.contact_id,
                now=dlg.clock(),
            )
            result = fn(ctx)
    except Exception:
        log.exception("action %s failed; the transaction was rolled back", name)
        dlg._fire(f"action {name} raised: rolled back")
        dlg._say("action_error")
        dlg._handoff("action_error", say=False)
        return None
    dlg._fire(f"action {name} -> {result.outcome}")
    return result


def rewind_for(dlg: DialogSession, task: Task, intent: Any, slot: str) -> None:
    """The action said a slot value was wrong: say why, then ask for the slot again."""
    step = intent.steps[task.step] if task.step < len(intent.steps) else None
    if step is not None and step.kind == "respond":
        name = step.respond if isinstance(step.respond, str) else step.respond.get(task.outcome or "")
        if name:
            dlg._say(name, **{**task.slots, **task.data})
    task.slots.pop(slot, None)
    task.step = next((i for i, s in enumerate(intent.steps) if s.ask == slot), 0)
    reprompt_after_invalid(dlg, task, slot)


def reprompt_after_invalid(dlg: DialogSession, task: Task, slot_name: str) -> None:
    """Ask again for a slot value an action rejected."""
    task.reprompts += 1
    if task.reprompts > dlg.engine.options.max_reprompts:
        dlg._handoff("invalid_" + slot_name)
        return
    dlg._fire(f"re-ask {slot_name} after invalid value")
    reprompt_slot(dlg, slot_name)


def reprompt_slot(dlg: DialogSession, slot_name: str) -> None:
    """Ask for slot ``slot_name`` again in its reprompt words (its prompt if it has none) and expect its value."""
    slot = dlg.domain.slots[slot_name]
    dlg._out.append(dlg._text(slot.reprompt or slot.prompt))
    dlg._asked(Expect.SLOT, slot=slot_name)


def complete(dlg: DialogSession, task: Task) -> None:
    """Close ``task`` as done; :func:`advance` takes the next request."""
    task.status = "done"
    dlg.state.finished.append(task)
    dlg.state.current = None
    dlg._fire(f"done {task.intent} ({task.outcome or 'ok'})")


def cancel_current(dlg: DialogSession, say: bool = True) -> None:
    """Drop the current request (the caller said no), saying so unless ``say`` is false."""
    st = dlg.state
    if st.current is not None:
        st.current.status = "cancelled"
        st.finished.append(st.current)
        st.current = None
    st.expect = Expect.NOTHING
    st.question = None
    if say:
        dlg._say("flow_cancelled")
    advance(dlg)
