"""A call from start to end, for every channel: :class:`~voicebot.calls.runner.CallRunner` wires the bot's
pipeline, the call record, the hand-off and the transfer once; a channel (``voicebot.server.sip`` for SIP,
``voicebot.server.browser_call`` for WebRTC) only provides its leg and transport."""

from voicebot.calls.runner import CallRunner

__all__ = ["CallRunner"]
