"""The dialog manager: per-call state, flows, verification, hand-off."""

from dialogs.manager.handoff import HandoffPacket
from dialogs.manager.session import BotReply, DialogSession, Turn
from dialogs.manager.signals import TurnSignals

__all__ = ["BotReply", "DialogSession", "HandoffPacket", "Turn", "TurnSignals"]
