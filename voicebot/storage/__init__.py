"""Call records (calls and their turns) in the dialog engine's SQLAlchemy database."""

from voicebot.storage.calls import CallStore

__all__ = ["CallStore"]
