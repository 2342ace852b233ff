"""Domain files: the bundled one loads, an integrator's edit works without code, broken files are explained."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from dialogs.domain import DIALOG_ACTS, DomainError, bundled_domain_path, load_domain
from dialogs.engine import DialogEngine, Turn

REQUIRED_INTENTS = {
    "order_status", "return_item", "change_address", "reset_password", "billing_question",
    "cancel_subscription", "technical_support", "speak_to_agent", *DIALOG_ACTS,
}


def test_bundled_domain_has_the_agreed_intents():
    domain = load_domain()
    assert set(domain.intents) >= REQUIRED_INTENTS
    for name in REQUIRED_INTENTS - {"out_of_scope"}:
        assert len(domain.intents[name].examples) >= 10, name
    assert domain.intents["technical_support"].human_only
    assert domain.intents["cancel_subscription"].verify
    # Calm variants exist for the responses said most to annoyed callers.
    assert any(v.style == "calm" for v in domain.responses["handoff"])


def _copy_domain(tmp_path: Path) -> Path:
    target = tmp_path / "domain"
    shutil.copytree(bundled_domain_path(), target, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return target


def test_integrator_adds_an_intent_in_yaml_only(tmp_path):
    folder = _copy_domain(tmp_path)
    extra = {
        "intents": {
            "store_hours": {
                "examples": [
                    "what are your opening hours",
                    "when are you open",
                    "what time does the store open",
                    "are you open on sunday",
                    "what are the store hours",
                    "until when are you open today",
                    "when do you close",
                    "opening times please",
                    "is the shop open on saturdays",
                    "what time do you close tonight",
                ],
                "steps": [{"respond": "store_hours_answer"}],
            }
        },
        "responses": {"store_hours_answer": ["We are open from nine to six, Monday to Saturday."]},
    }
    (folder / "store_hours.yaml").write_text(yaml.safe_dump(extra))
    engine = DialogEngine.build(
        domain_path=folder, database_url=f"sqlite:///{tmp_path / 'x.db'}", clock=lambda: datetime(2026, 11, 20, 9)
    )
    session = engine.new_call(channel="chat")
    session.start()
    reply = session.handle(Turn(text="um when do you open on saturday"))
    assert [i["name"] for i in reply.intents] == ["store_hours"]
    assert "nine to six" in reply.text


def test_broken_yaml_names_file_and_line(tmp_path):
    folder = _copy_domain(tmp_path)
    (folder / "domain.yaml").write_text("intents:\n  order_status:\n    steps: [ask: order_id\n")
    with pytest.raises(DomainError) as err:
        load_domain(folder)
    (file, where, msg) = err.value.problems[0]
    assert file.endswith("domain.yaml")
    assert "line" in where
    assert "YAML" in msg


def test_a_response_written_twice_is_refused_with_both_lines(tmp_path):
    folder = _copy_domain(tmp_path)
    path = folder / "domain.yaml"
    lines = path.read_text().splitlines(keepends=True)
    first = lines.index("  greeting_short:\n")
    lines.insert(first + 2, "  greeting_short:\n    - Hi, Acme here.\n")  # after the first one's variant
    path.write_text("".join(lines))
    with pytest.raises(DomainError) as err:
        load_domain(folder)
    assert err.value.problems == [(str(path), f"line {first + 3}, column 3", "not valid YAML: key 'greeting_short' "
                                   f"appears twice in the same mapping (first at line {first + 1}, column 3)")]


def test_wrong_key_and_unknown_references_are_each_reported(tmp_path):
    folder = _copy_domain(tmp_path)
    data = yaml.safe_load((folder / "domain.yaml").read_text())
    data["intents"]["order_status"]["verfy"] = True  # typo
    (folder / "domain.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(DomainError) as err:
        load_domain(folder)
    keys = [k for _, k, _ in err.value.problems]
    assert "intents.order_status.verfy" in keys
    assert all(f.endswith("domain.yaml") for f, _, _ in err.value.problems)

    data["intents"]["order_status"].pop("verfy")
    data["intents"]["order_status"]["steps"][0] = {"ask": "order_number_typo"}
    data["intents"]["return_item"]["steps"][-1] = {"respond": "no_such_response"}
    (folder / "domain.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(DomainError) as err:
        load_domain(folder)
    text = str(err.value)
    assert "intents.order_status.steps.0.ask" in text and "order_number_typo" in text
    assert "no_such_response" in text


def test_step_with_two_kinds_is_rejected(tmp_path):
    folder = _copy_domain(tmp_path)
    data = yaml.safe_load((folder / "domain.yaml").read_text())
    data["intents"]["order_status"]["steps"][0] = {"ask": "order_id", "respond": "order_not_found"}
    (folder / "domain.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(DomainError, match="exactly one of"):
        load_domain(folder)
