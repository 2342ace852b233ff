"""``voicebot config check`` catches what would fail at run time, with file, key path and "did you mean";
start-up (``voicebot chat``) refuses the same domain with the same message and no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dialogs.domain import DomainError, bundled_domain_path, load_domain


@pytest.fixture()
def domain_dir(tmp_path: Path) -> Path:
    target = tmp_path / "domain"
    shutil.copytree(bundled_domain_path(), target, ignore=shutil.ignore_patterns("__*"))
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def problems(domain_dir: Path) -> list[tuple[str, str, str]]:
    with pytest.raises(DomainError) as err:
        load_domain(domain_dir)
    return err.value.problems


def test_the_bundled_domain_passes_every_check() -> None:
    load_domain()


def test_an_unknown_action_is_named_with_the_nearest_one(domain_dir: Path) -> None:
    edit(domain_dir / "domain.yaml", "action: lookup_order", "action: lookup_ordr")
    assert problems(domain_dir) == [(str(domain_dir / "domain.yaml"), "intents.order_status.steps.1.action",
                                     "unknown action 'lookup_ordr' (did you mean 'lookup_order'?)")]


def test_an_unknown_placeholder_is_named_with_the_nearest_value(domain_dir: Path) -> None:
    edit(domain_dir / "domain.yaml", "{order_id_spoken}", "{order_idd}")
    [(file, key, message)] = problems(domain_dir)
    assert file == str(domain_dir / "domain.yaml") and key.startswith("responses.")
    assert "unknown placeholder '{order_idd}'" in message and "did you mean 'order_id'?" in message


def test_a_placeholder_of_another_flows_action_is_unknown_where_it_is_used(domain_dir: Path) -> None:
    # {rma_spoken} comes from start_return: the address flow never has it.
    edit(domain_dir / "domain.yaml", "Your address is now {address}.", "Your address is now {address}. {rma_spoken}")
    [(_, key, message)] = problems(domain_dir)
    assert key == "responses.address_changed.0" and "'{rma_spoken}'" in message


def test_intents_in_nlu_yaml_that_the_domain_lacks(domain_dir: Path) -> None:
    with (domain_dir / "nlu.yaml").open("a") as f:
        f.write("  order_stauts:\n    examples:\n      - where has my parcel got to\n")
    assert problems(domain_dir) == [(str(domain_dir / "nlu.yaml"), "intents.order_stauts",
                                     "has examples but the domain file does not declare this intent "
                                     "(did you mean 'order_status'?)")]


def test_an_intent_without_examples_is_reported(domain_dir: Path) -> None:
    edit(domain_dir / "domain.yaml", "  speak_to_agent:\n", "  speak_to_robot:\n    human_only: true\n"
                                                             "  speak_to_agent:\n")
    assert ("intents.speak_to_robot.examples", "no example utterances: the intent can never be recognised") in \
        [(k, m) for _, k, m in problems(domain_dir)]


def test_a_misspelt_key_gets_a_did_you_mean(domain_dir: Path) -> None:
    edit(domain_dir / "domain.yaml", "    verify: true\n", "    verifiy: true\n")
    file, key, message = problems(domain_dir)[0]
    assert key == "intents.order_status.verifiy" and message == "unknown key (did you mean 'verify'?)"


def test_a_misspelt_response_gets_a_did_you_mean(domain_dir: Path) -> None:
    edit(domain_dir / "domain.yaml", "      - respond: password_reset_sent", "      - respond: pasword_reset_sent")
    [(_, key, message)] = problems(domain_dir)
    assert key == "intents.reset_password.steps.2" and "did you mean 'password_reset_sent'?" in message


def run(args: list[str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voicebot", *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_config_check_and_chat_refuse_the_same_errors(domain_dir: Path, tmp_path: Path) -> None:
    edit(domain_dir / "domain.yaml", "action: lookup_order", "action: lookup_ordr")
    (domain_dir / "knowledge" / "gift-cards.md").write_text("---\nquestions: [do you sell gift cards]\n---\n")
    cfg = tmp_path / "voicebot.yaml"
    cfg.write_text(f"domain:\n  path: {domain_dir}\ndatabase:\n  url: sqlite:///{tmp_path / 'bot.db'}\n"
                   f"models:\n  stt:\n    model: {tmp_path / 'no-whisper'}\n  tts:\n    voice: {tmp_path / 'no.onnx'}\n")
    check = run(["config", "check", str(cfg)], cwd=tmp_path)
    assert check.returncode == 1 and "Traceback" not in check.stderr
    action = "intents.order_status.steps.1.action: unknown action 'lookup_ordr' (did you mean 'lookup_order'?)"
    knowledge = f"{domain_dir / 'knowledge' / 'gift-cards.md'}: knowledge: gift_cards: answer: is missing"
    for expected in (action, knowledge, f"models.stt.model: Whisper model directory {tmp_path / 'no-whisper'}",
                     f"models.tts.voice: Piper voice {tmp_path / 'no.onnx'} does not exist"):
        assert expected in check.stderr, check.stderr
    chat = run(["chat", "--config", str(cfg)], cwd=tmp_path, stdin="where is my order\n")
    assert chat.returncode != 0 and "Traceback" not in chat.stderr
    assert action in chat.stderr and knowledge in chat.stderr
