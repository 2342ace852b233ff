"""The per-call voice pipeline (VAD, STT, dialog, TTS) over any pipecat transport, and the models it shares."""
