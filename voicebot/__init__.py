"""voicebot: the application (config, pipeline assembly, server, storage of calls, CLI)."""

__version__ = "0.1.0"
