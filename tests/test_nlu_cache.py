"""The trained NLU kept on disk (dialogs.nlu.cache): a second process with the same examples loads the classifier
instead of training it; changed examples train a new one; an unreadable entry is trained again with a log line.

Each test uses its own cache folder, so the in-process memo (keyed by the folder too) never answers for the disk."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from dialogs.nlu.cache import KEEP_ENTRIES, ClassifierCache, user_cache_dir
from dialogs.nlu.classifier import IntentClassifier, fitted_classifier

EXAMPLES = {"greet": ["hello there", "hi", "good morning"], "bye": ["goodbye", "see you later", "bye now"]}


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("dialogs.nlu")]


def test_a_second_start_loads_the_classifier_the_first_trained(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dialogs.nlu")
    first = fitted_classifier(EXAMPLES, cache_dir=tmp_path / "a")
    assert any(m.startswith("NLU classifier trained in") for m in _messages(caplog))
    [entry] = (tmp_path / "a").glob("*.pickle")
    assert entry.stat().st_mode & 0o077 == 0 and (tmp_path / "a").stat().st_mode & 0o077 == 0  # the user's only
    # Another folder holding the same entry stands for the next process: it loads, it does not train.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    caplog.clear()
    loaded = fitted_classifier(EXAMPLES, cache_dir=tmp_path / "b")
    assert _messages(caplog) == [f"NLU classifier loaded from {tmp_path / 'b' / entry.name}"]
    assert loaded is not first and loaded.classes == first.classes == ["bye", "greet"]
    assert (loaded.predict_proba(["hello", "see you"]) == first.predict_proba(["hello", "see you"])).all()


def test_changed_examples_or_features_train_a_new_entry(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dialogs.nlu")
    fitted_classifier(EXAMPLES, cache_dir=tmp_path)
    caplog.clear()
    changed = fitted_classifier({**EXAMPLES, "thanks": ["thank you", "thanks a lot"]}, cache_dir=tmp_path)
    assert changed.classes == ["bye", "greet", "thanks"]
    assert [m.split(" in ")[0] for m in _messages(caplog)] == ["NLU classifier trained"]
    assert len(list(tmp_path.glob("*.pickle"))) == 2


def test_an_unreadable_entry_is_trained_again_with_a_log_line(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dialogs.nlu")
    fitted_classifier(EXAMPLES, cache_dir=tmp_path / "a")
    [entry] = (tmp_path / "a").glob("*.pickle")
    corrupt = tmp_path / "b" / entry.name
    corrupt.parent.mkdir()
    corrupt.write_bytes(entry.read_bytes()[:1000])  # a truncated write, say
    caplog.clear()
    again = fitted_classifier(EXAMPLES, cache_dir=tmp_path / "b")
    messages = _messages(caplog)
    assert messages[0].startswith(f"NLU cache entry {corrupt} is unreadable") and "training again" in messages[0]
    assert messages[1].startswith("NLU classifier trained in")
    assert again.classes == ["bye", "greet"]
    assert isinstance(ClassifierCache(tmp_path / "b").get(entry.stem), IntentClassifier)  # replaced by a good one


def test_the_cache_keeps_the_newest_entries_and_lives_in_the_users_cache(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ClassifierCache(tmp_path)
    for i in range(KEEP_ENTRIES + 3):
        cache.put(f"k{i:02d}", i)
    kept = sorted(p.stem for p in tmp_path.glob("*.pickle"))
    assert len(kept) == KEEP_ENTRIES and "k00" not in kept and f"k{KEEP_ENTRIES + 2:02d}" in kept
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "voicebot" / "nlu"


def test_an_entry_others_could_have_written_is_not_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A pickle runs code when loaded: a folder or entry writable by group or others is never read."""
    caplog.set_level(logging.INFO, logger="dialogs.nlu")
    fitted_classifier(EXAMPLES, cache_dir=tmp_path / "a")
    [entry] = (tmp_path / "a").glob("*.pickle")
    for name, folder_mode, entry_mode in (("b", 0o777, 0o600), ("c", 0o700, 0o666)):
        shutil.copytree(tmp_path / "a", tmp_path / name)
        (tmp_path / name).chmod(folder_mode)
        (tmp_path / name / entry.name).chmod(entry_mode)
        caplog.clear()
        again = fitted_classifier(EXAMPLES, cache_dir=tmp_path / name)
        messages = _messages(caplog)
        assert "writable by group or others" in messages[0] and "training again" in messages[0], messages
        assert messages[1].startswith("NLU classifier trained in")
        assert again.classes == ["bye", "greet"]
