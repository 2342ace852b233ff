"""The dialog manager: per-call state, flows, verification, hand-off."""

from dialogs.manager.session import BotReply, DialogSession, Turn

__all__ = ["BotReply", "DialogSession", "Turn"]
