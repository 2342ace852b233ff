"""The strict YAML reader every integrator file goes through: a repeated key is an error naming the key and both
lines; everything else reads exactly as ``yaml.safe_load`` reads it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

import dialogs.domain.loader
import voicebot.config
from dialogs.domain import load_domain
from dialogs.knowledge.base import _split
from dialogs.strict_yaml import RepeatedKeyError, YamlFault, load_yaml, yaml_fault
from voicebot.config import load_settings

REPO = Path(__file__).resolve().parents[1]


def fault(text: str, first_line: int = 1) -> YamlFault:
    with pytest.raises(yaml.YAMLError) as err:
        load_yaml(text)
    return yaml_fault(err.value, first_line)


def test_a_repeated_key_names_the_key_and_both_places() -> None:
    text = "intents:\n  order_status:\n    verify: true\n    steps: []\n    verify: false\n"
    with pytest.raises(RepeatedKeyError) as err:
        load_yaml(text)
    assert err.value.key == "verify"
    assert str(yaml_fault(err.value)) == (
        "line 5, column 5: key 'verify' appears twice in the same mapping (first at line 3, column 5)")


def test_a_repeated_top_level_block_is_refused() -> None:
    assert fault("intents: {}\nslots: {}\nintents: {}\n").line == 3


def test_keys_that_read_as_the_same_value_are_one_key() -> None:
    assert "key True appears twice" in fault("yes: 1\ntrue: 2\n").problem
    assert "key 1 appears twice" in fault("1: a\n0x1: b\n").problem


def test_the_same_key_in_different_mappings_is_fine() -> None:
    text = "- say: hi\n  expect: [a]\n- say: bye\n  expect: [b]\n"
    assert load_yaml(text) == [{"say": "hi", "expect": ["a"]}, {"say": "bye", "expect": ["b"]}]


@pytest.mark.parametrize("text", [
    # a merge key, and a key of the mapping itself that overrides a merged one
    "base: &b {x: 0, y: 1}\nmid: &m\n  <<: *b\n  x: 1\ntop:\n  <<: *m\n  y: 5\n",
    # a list of merges
    "a: &a {x: 1}\nb: &b {y: 2}\nc:\n  <<: [*a, *b]\n  x: 3\n",
    # a mapping merged before the reader reaches its own contents (nested, later in the same document)
    "defs:\n  a: &a\n    <<: {x: 0, z: 2}\n    x: 1\nuse:\n  <<: *a\n  w: 1\n",
    # anchors and aliases of scalars and lists
    "v: &v 3\nw: *v\nl: &l [1, 2]\nm: *l\n",
])
def test_anchors_and_merge_keys_read_as_safe_load_reads_them(text: str) -> None:
    assert load_yaml(text) == yaml.safe_load(text)


def test_a_syntax_error_keeps_its_line_column_and_problem() -> None:
    f = fault("database: [unclosed\n")
    assert (f.line, f.column) == (2, 1) and "expected ','" in f.problem


def test_first_line_shifts_both_lines_of_a_repeat() -> None:
    # front matter cut out of a Markdown file starts on the file's line 2
    f = fault("questions: [a]\nquestions: [b]\n", first_line=2)
    assert str(f) == "line 3, column 1: key 'questions' appears twice in the same mapping (first at line 2, column 1)"


def test_every_yaml_file_and_front_matter_in_the_repository_reads_strictly_as_before() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    read = 0
    for name in tracked:
        path = REPO / name
        if path.suffix in (".yaml", ".yml"):
            text: str | None = path.read_text(encoding="utf-8")
        elif path.suffix == ".md":
            parts = _split(path.read_text(encoding="utf-8"))
            text = parts[0] if parts else None
        else:
            continue
        if text is not None:
            assert load_yaml(text) == yaml.safe_load(text), name
            read += 1
    assert read >= 40  # the domain, its knowledge entries, the conversations, voicebot.yaml, docker-compose.yml


def test_the_bundled_domain_loads_as_with_safe_load(monkeypatch: pytest.MonkeyPatch) -> None:
    strict = load_domain()
    monkeypatch.setattr(dialogs.domain.loader, "load_yaml", yaml.safe_load)
    assert strict.model_dump() == load_domain().model_dump()


def test_the_shipped_voicebot_yaml_loads_as_with_safe_load(monkeypatch: pytest.MonkeyPatch) -> None:
    strict = load_settings(REPO / "voicebot.yaml")
    monkeypatch.setattr(voicebot.config, "load_yaml", yaml.safe_load)
    assert strict.model_dump() == load_settings(REPO / "voicebot.yaml").model_dump()
