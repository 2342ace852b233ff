"""Search stored rows, logs and traces for a secret number without tripping over timestamps.

A database dump or a log is full of digits that are not the caller's: a timestamp's microseconds (`21:45:56.432191`)
hold any four digits sooner or later, and so does a random id (a SIP Call-ID `46fe4321ac...`, a port 43210). A
secret leaks only where it stands as a number of its own, with no digit or letter right before or after it, which is
also how the dialog or a person would read it back (`PIN 4321`, `dtmf=4321#`, `'4321'`).
"""
from __future__ import annotations

import re


def leak(text: str, secret: str) -> str | None:
    """The text around the first place `secret` stands as a number of its own in `text`, or None."""
    found = re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text)
    if found is None:
        return None
    return text[max(0, found.start() - 200):found.end() + 80]


def assert_no_leak(text: str, *secrets: str) -> None:
    for secret in secrets:
        around = leak(text, secret)
        assert around is None, f"{secret!r} in {around!r}"
