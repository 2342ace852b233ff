"""The dialog engine's agent desk in voicebot: whether a hand-off can reach a human, and where the callback
requests of callers nobody could take go (the agent queue's own table, beside those of callers who left a
queue asking for a callback)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from telephony.queue.store import CallbackStore
from voicebot.config import Settings

NO_AGENT_REASON = "no_agent"  # the reason of a callback request stored because nobody could take the call


class QueueDesk:
    """A human can take a hand-off when the config has ``agents:`` and ``queues:`` (the agent queue then
    handles busy or absent agents with its own fallback: callback, voice message); without them nobody can,
    and the dialog offers a callback instead of pretending to transfer."""

    def __init__(self, engine: Engine, *, has_agents: bool, redact: Callable[[Any], Any] | None = None,
                 clock: Callable[[], dt.datetime] | None = None):
        self.callbacks = CallbackStore(engine)
        self.has_agents = has_agents
        self._redact = redact or (lambda value: value)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine, redact: Callable[[Any], Any] | None = None) -> QueueDesk:
        return cls(engine, has_agents=no_agents_warning(settings) is None, redact=redact)

    def agents_available(self, queue: str) -> bool:
        return self.has_agents

    def request_callback(self, *, call_id: str, number: str, queue: str, reason: str,
                         packet: dict[str, Any]) -> int:
        return self.callbacks.add(call_id=call_id, caller=number, queue=queue, reason=NO_AGENT_REASON,
                                  handoff=self._redact(packet), now=self._clock())


def no_agents_warning(settings: Settings) -> str | None:
    """Why hand-offs of this config reach nobody (no agents or no queues configured), or None if they can.

    ``voicebot config check`` and ``voicebot serve`` say it: the bot then offers callers a callback instead."""
    missing = [name for name, present in (("agents", settings.agents), ("queues", settings.queues)) if not present]
    if not missing:
        return None
    return (f"no {' and no '.join(missing)} configured: a caller the bot hands over (asks for a person, is not "
            "understood, fails verification) reaches nobody; the bot tells them so and offers a callback, stored "
            "as a callback request (GET /api/callbacks). Add agents: and queues: to transfer calls to people.")
