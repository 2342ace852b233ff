"""Consent to call recording: what the greeting announces and how a caller declines, by words or a key.

The dialog announces the recording in the greeting of a voice call and understands a decline at any point of
the call (a global request, like "agent"): the bot confirms in one line and asks its pending question again.
What happens to the audio is the application's business; the dialog only says that the caller declined
(:attr:`dialogs.engine.BotReply.recording_declined`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Channels that carry the caller's voice: a typed chat is never recorded, so it hears no announcement.
RECORDED_CHANNELS = frozenset({"sip", "webrtc"})

DEFAULT_ANNOUNCEMENT = "This call may be recorded; say 'no recording' or press 9 if you'd rather not."
DEFAULT_CONFIRMATION = "Understood, this call is not recorded."
DEFAULT_DECLINE_WORDS = ("no recording", "do not record", "stop recording", "stop the recording",
                         "not be recorded")


@dataclass(frozen=True)
class RecordingConsent:
    """The recording announcement, the decline words (phrases matched as whole words, case and punctuation
    ignored, "don't" as "do not"), the decline key (a keypad entry of that key alone) and the confirmation."""

    announcement: str = DEFAULT_ANNOUNCEMENT
    decline_words: tuple[str, ...] = DEFAULT_DECLINE_WORDS
    decline_key: str = "9"
    confirmation: str = DEFAULT_CONFIRMATION

    def declines(self, text: str, dtmf: str | None) -> bool:
        """Whether a caller turn (its words or its keys) declines the recording."""
        if dtmf is not None and self.decline_key and dtmf.strip("#") == self.decline_key:
            return True
        words = _words(text)
        return any(phrase and phrase in words for phrase in (_words(p) for p in self.decline_words))


def _words(text: str) -> str:
    """``text`` as space-separated lower-case words with spaces at both ends (for whole-phrase matching)."""
    tokens = re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))
    expanded = " ".join(tokens).replace("don't", "do not").replace("dont", "do not")
    return f" {expanded} " if expanded else ""
