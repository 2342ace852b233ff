"""Silero voice activity for many calls: the network loaded once per process, a few hundred bytes of state per call.

pipecat's ``SileroVADAnalyzer`` loads its own ONNX session for every analyzer: 50-100 ms on the event loop for
every call that starts (every other call's audio waits meanwhile) and a session's memory per call. An ONNX
Runtime session may be run from any thread, and Silero's recurrent state is an input and an output of each
run, so one session serves every call. :class:`VoiceStream` keeps one call's state and scores it the way
pipecat's analyzer does (same model file, 64 samples of context, the same state resets).

Most of a phone call's audio is the caller waiting for the bot, and on many lines that is digital silence (a
muted phone, a trunk that suppresses silence, the gaps the jitter buffer fills). After a reset of Silero's state,
what the network makes of all-zero windows is always the same: :class:`SileroModel` works it out once, and a stream
takes it from there instead of running the network, to the bit the same as running it.
"""

from __future__ import annotations

import math
import threading
from importlib import resources

import numpy as np
import onnxruntime

from audio import pcm

WINDOW = 512  # Silero's window at 16 kHz: 32 ms
CONTEXT = 64  # samples of the previous window Silero prepends to each window at 16 kHz
# pipecat's resets of the recurrent state (pipecat.audio.vad.silero): after this much audio, at the first
# window that follows RESET_LOW_WINDOWS windows scored below RESET_MAX_CONFIDENCE.
RESET_INTERVAL_S = 2.0
RESET_MAX_CONFIDENCE = 0.1
RESET_LOW_WINDOWS = 5


class SileroModel:
    """The Silero VAD network (the file pipecat ships), one ONNX session for every call of the process."""

    def __init__(self) -> None:
        options = onnxruntime.SessionOptions()
        # One thread: a 32 ms window takes well under a millisecond, and calls score their windows side by side.
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
        with resources.as_file(path) as file:
            self.session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"],
                                                        sess_options=options)
        self._rate = np.array(pcm.SAMPLE_RATE, dtype=np.int64)
        # Silence after a reset: the state before each all-zero window and that window's score, up to the next reset.
        self.silent_states: list[np.ndarray] = [np.zeros((2, 1, 128), dtype=np.float32)]
        self.silent_scores: list[float] = []
        zeros = np.zeros((1, CONTEXT + WINDOW), dtype=np.float32)
        for _ in range(math.ceil(RESET_INTERVAL_S * pcm.SAMPLE_RATE / WINDOW) + RESET_LOW_WINDOWS):
            score, state = self.score(zeros, self.silent_states[-1])
            self.silent_scores.append(score)
            self.silent_states.append(state)

    def score(self, window: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        """Speech probability of ``window`` (1 x (CONTEXT + WINDOW) float samples) and the next recurrent state."""
        out, new_state = self.session.run(None, {"input": window, "state": state, "sr": self._rate})
        return float(out[0, 0]), new_state


# Process-wide, like the models: the session is read-only once loaded (each VoiceStream carries its own recurrent
# state), and every call's turn taking and SharedModels' voice gate (holds_voice) score with the same one whichever
# SharedModels a test or benchmark built; runtime.py loads it at start-up.
_shared: SileroModel | None = None
_shared_lock = threading.Lock()


def shared_silero() -> SileroModel:
    """The process's :class:`SileroModel`, loaded on first use (call it at start-up to keep that off a call)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SileroModel()
        return _shared


class VoiceStream:
    """One call's voice confidence, one 32 ms window (512 samples of 16 kHz PCM16) at a time."""

    def __init__(self, model: SileroModel | None = None, skip_silence: bool = True):
        self._model = model or shared_silero()
        self._skip_silence = skip_silence
        self._reset_windows = math.ceil(RESET_INTERVAL_S * pcm.SAMPLE_RATE / WINDOW)
        self.scored = 0  # windows the network scored
        self._input = np.zeros((1, CONTEXT + WINDOW), dtype=np.float32)
        self._since_reset = 0
        self._low = 0
        self._reset_state()

    def _reset_state(self) -> None:
        self._state = self._model.silent_states[0]
        self._input[0, WINDOW:] = 0.0  # the context the next window gets
        # All-zero windows since the reset (their state is the model's silent_states[n]); None after any other.
        self._silent: int | None = 0

    def confidence(self, window: bytes) -> float:
        """The probability that ``window`` is speech."""
        samples = np.frombuffer(window, dtype=np.int16)
        if len(samples) != WINDOW:
            raise ValueError(f"a VAD window is {WINDOW} samples, not {len(samples)}")
        # The new window goes after the context (the end of the previous one) in the same buffer.
        self._input[0, :CONTEXT] = self._input[0, WINDOW:]
        np.multiply(samples, 1 / 32768, out=self._input[0, CONTEXT:], casting="unsafe")
        # Silence since the last reset: the network's answer is known (right after speech it is not: the network
        # still hears the voice for a few windows, and runs until its state is reset).
        silent = self._silent
        if silent is not None and silent < len(self._model.silent_scores) and self._skip_silence and not samples.any():
            confidence = self._model.silent_scores[silent]
            self._silent = silent + 1
        else:
            if silent is not None:
                self._state, self._silent = self._model.silent_states[silent], None
            confidence, self._state = self._model.score(self._input, self._state)
            self.scored += 1
        self._since_reset += 1
        self._low = self._low + 1 if confidence < RESET_MAX_CONFIDENCE else 0
        if self._since_reset >= self._reset_windows and self._low >= RESET_LOW_WINDOWS:
            self._reset_state()
            self._since_reset = 0
        return confidence


def holds_voice(pcm16: bytes, threshold: float, model: SileroModel | None = None) -> bool:
    """Whether some 32 ms window of ``pcm16`` (16 kHz mono PCM16) is speech with a probability of ``threshold`` or more.

    Turn taking starts a turn only on such windows; a clip without one is tones, hiss, music or a cough, and Whisper
    given it invents words ("Okay.", "Thank you.") often enough to matter. Stops at the first voiced window."""
    stream = VoiceStream(model)
    size = WINDOW * pcm.SAMPLE_WIDTH
    return any(stream.confidence(pcm16[i : i + size]) >= threshold for i in range(0, len(pcm16) - size + 1, size))
