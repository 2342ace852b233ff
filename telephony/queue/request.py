"""What the agent queue is told about a caller the bot hands over: :class:`QueueRequest`, plain data.

The application computes it from whatever its dialog engine hands over (``voicebot.transfer.request``), so
the queue never reads another package's hand-off format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

NO_WHISPER = "A caller from the voice bot."


@dataclass(frozen=True)
class QueueRequest:
    """A caller to queue. ``queue`` None: the first configured queue; ``priority`` is the base the queue's
    ``priority_rules`` add to. ``whisper`` is what the agent hears before the bridge. ``details`` is the
    hand-off as the application made it, passed through untouched (the agent page shows it, a voice message
    keeps it); the queue itself reads only the typed fields."""

    queue: str | None = None
    priority: int = 0
    caller: str | None = None
    """The caller's number or name, if known."""
    whisper: str = NO_WHISPER
    summary: str | None = None
    customer_name: str | None = None
    verified: bool = False
    intents: tuple[str, ...] = ()
    """What the caller asked for, as intent names (pending first)."""
    frustration: str | None = None
    """The caller's frustration level (``calm``, ``annoyed``, ``frustrated``), if known."""
    reason: str | None = None
    """Why the bot handed over (``caller_request``, ``not_understood``, ...)."""
    details: Mapping[str, object] = field(default_factory=dict, repr=False, compare=False)
