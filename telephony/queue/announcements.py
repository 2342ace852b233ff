"""What a waiting caller is told, as text for the TTS voice (English)."""

from __future__ import annotations

from telephony.queue.actions import Announce

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def wait_phrase(seconds: float | None) -> str | None:
    """A spoken estimate rounded the way people say it: "less than a minute", "about 3 minutes",
    "about 1 hour 10 minutes"; None when unknown."""
    if seconds is None:
        return None
    minutes = int(seconds / 60 + 0.5)  # half up: 2.5 minutes is "about 3"
    if seconds < 60 or minutes < 1:
        return "less than a minute"
    if minutes == 1:
        return "about one minute"
    if minutes < 60:
        return f"about {minutes} minutes"
    hours, rest = divmod(minutes, 60)
    hour_text = "1 hour" if hours == 1 else f"{hours} hours"
    return f"about {hour_text}" + (f" {rest} minutes" if rest else "")


def announcement_text(a: Announce) -> str:
    """The sentence played to a waiting caller: a short message on the first announcement, their position,
    the estimated wait and, if the queue has one, the callback key."""
    parts = []
    if a.first:
        parts.append("All our agents are busy at the moment. Please stay on the line.")
    if a.position <= len(_ORDINALS):
        parts.append(f"You are {_ORDINALS[a.position - 1]} in line.")
    else:
        parts.append(f"You are number {a.position} in line.")
    wait = wait_phrase(a.estimated_wait_s)
    if wait:
        parts.append(f"The expected waiting time is {wait}.")
    if a.callback_key:
        key = {"*": "star", "#": "hash"}.get(a.callback_key, a.callback_key)
        parts.append(f"To be called back instead, press {key}.")
    return " ".join(parts)
