"""The contract between flows in YAML and code that touches the customer database.

A flow step ``action: lookup_order`` calls the function registered under that name with an
:class:`ActionContext` and gets an :class:`ActionResult`. The result's ``outcome`` picks the response
(``respond: {ok: ..., not_found: ...}``) and its ``data`` fills the response template.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session


@dataclass
class ActionContext:
    session: Session  # one transaction: committed by the caller if the action succeeds, rolled back otherwise
    slots: dict[str, Any]  # filled slots of the current intent (normalised values, e.g. "45281", a date)
    customer_id: int | None  # the *verified* customer, None if not verified
    contact_id: int | None  # the contact (call/chat) row this turn belongs to
    now: datetime  # injected clock
    actor: str = "bot"  # who made a change, for the audit log


@dataclass
class ActionResult:
    outcome: str  # "ok", "not_found", "not_allowed", "invalid", "already_done", ...
    data: dict[str, Any] = field(default_factory=dict)  # values for response templates
    invalid_slot: str | None = None  # this slot's value was wrong: re-ask it
    changed: bool = False  # the database was changed (an audit row was written)


ActionFn = Callable[[ActionContext], ActionResult]
ACTIONS: dict[str, ActionFn] = {}
# The data keys each action may return: the response placeholders it fills (checked when a domain loads).
ACTION_DATA: dict[str, frozenset[str]] = {}


def action(name: str, data: tuple[str, ...] = ()) -> Callable[[ActionFn], ActionFn]:
    """Register a function as the action ``name`` usable from domain YAML; ``data`` names the keys its results
    may carry (each also as ``KEY_spoken``), so ``voicebot config check`` can tell a misspelt placeholder."""

    def register(fn: ActionFn) -> ActionFn:
        if name in ACTIONS:
            raise ValueError(f"action {name!r} registered twice")
        ACTIONS[name] = fn
        ACTION_DATA[name] = frozenset(data)
        return fn

    return register
