"""The command line as other parts and integrators use it: config check and chat --json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str], cwd: Path, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "voicebot", *args], input=stdin, capture_output=True, text=True, cwd=cwd,
        env=full_env, timeout=120,
    )


def test_config_check_accepts_the_shipped_file():
    result = run(["config", "check", str(REPO / "voicebot.yaml")], cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_config_check_lists_every_problem_with_its_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("database:\n  urll: x\nnlu:\n  threshold: 3\ndialog:\n  max_no_match: zero\n")
    result = run(["config", "check", str(bad)], cwd=tmp_path)
    assert result.returncode != 0
    for key in ("database.urll", "nlu.threshold", "dialog.max_no_match"):
        assert key in result.stderr
    assert "Traceback" not in result.stderr


def test_config_check_reports_invalid_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("database: [unclosed\n")
    result = run(["config", "check", str(bad)], cwd=tmp_path)
    assert result.returncode != 0 and "line" in result.stderr and "Traceback" not in result.stderr
    result = run(["config", "check", str(tmp_path / "nope.yaml")], cwd=tmp_path)
    assert result.returncode != 0 and "not found" in result.stderr


def test_environment_overrides_the_file(tmp_path):
    result = run(
        ["config", "show", "--config", str(REPO / "voicebot.yaml")], cwd=tmp_path,
        env={"VOICEBOT_NLU__THRESHOLD": "0.7", "VOICEBOT_DATABASE__URL": "sqlite:///elsewhere.db"},
    )
    assert result.returncode == 0, result.stderr
    assert "threshold: 0.7" in result.stdout and "sqlite:///elsewhere.db" in result.stdout


def test_config_check_follows_the_domain_path(tmp_path):
    (tmp_path / "domain.yaml").write_text("intents:\n  greet: {examples: [hi]}\n")
    cfg = tmp_path / "voicebot.yaml"
    cfg.write_text("domain:\n  path: domain.yaml\n")
    result = run(["config", "check", str(cfg)], cwd=tmp_path)
    assert result.returncode != 0
    assert "domain.path" in result.stderr and "goodbye" in result.stderr


def _domain_copy(tmp_path: Path) -> Path:
    from dialogs.domain import bundled_domain_path

    target = tmp_path / "domain"
    shutil.copytree(bundled_domain_path(), target, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return target


def test_config_check_names_a_key_written_twice_in_the_config(tmp_path):
    cfg = tmp_path / "voicebot.yaml"
    cfg.write_text("database:\n  url: sqlite:///a.db\nnlu:\n  threshold: 0.5\ndatabase:\n  url: sqlite:///b.db\n")
    result = run(["config", "check", str(cfg)], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == (f"{cfg}: 1 problem(s)\n  line 5, column 1: not valid YAML: key 'database' appears twice "
                             "in the same mapping (first at line 1, column 1)\n")


def test_config_check_names_a_key_written_twice_in_a_knowledge_entry(tmp_path):
    entry = _domain_copy(tmp_path) / "knowledge" / "opening-hours.md"
    text = entry.read_text()
    assert text.startswith("---\nid: opening_hours\n")
    entry.write_text(text.replace("---\n", "---\nanswer: We never close.\n", 1))  # a second answer: below
    cfg = tmp_path / "voicebot.yaml"
    cfg.write_text("domain:\n  path: domain\n")
    result = run(["config", "check", str(cfg)], cwd=tmp_path)
    assert result.returncode == 1
    line = next(n for n, t in enumerate(entry.read_text().splitlines(), 1) if t.startswith("answer:") and n > 2)
    assert (f"domain.path: {entry}: knowledge: opening_hours: front matter is not valid YAML at line {line}, column 1: "
            "key 'answer' appears twice in the same mapping (first at line 2, column 1)") in result.stderr


def test_serve_refuses_to_start_on_a_key_written_twice(tmp_path):
    cfg = tmp_path / "voicebot.yaml"
    cfg.write_text("log_level: INFO\nlog_level: DEBUG\n")
    result = run(["serve", "--config", str(cfg)], cwd=tmp_path)
    assert result.returncode == 2
    assert "line 2, column 1: not valid YAML: key 'log_level' appears twice" in result.stderr
    domain = _domain_copy(tmp_path)
    with (domain / "domain.yaml").open("a") as f:
        f.write("version: 1\n")
    cfg.write_text(f"database:\n  url: sqlite:///{tmp_path / 'v.db'}\ndomain:\n  path: domain\n")
    result = run(["serve", "--config", str(cfg), "--port", "0"], cwd=tmp_path)
    assert result.returncode == 2
    assert f"{domain / 'domain.yaml'}: line " in result.stderr and "key 'version' appears twice" in result.stderr
    assert "Traceback" not in result.stderr


def test_chat_json_prints_one_object_per_line(tmp_path):
    lines = "\n".join(
        [
            "I moved so update my address and tell me where my order is",
            json.dumps({"dtmf": "4321"}),
            "thanks bye",
        ]
    )
    result = run(
        ["chat", "--json", "--caller-id", "+15551230001"], cwd=tmp_path, stdin=lines + "\n",
        env={"VOICEBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'c.db'}", "VOICEBOT_DATABASE__SEED_DEMO": "true"},
    )
    assert result.returncode == 0, result.stderr
    objs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objs) == 3
    first = objs[0]
    assert set(first) >= {"user", "intents", "bot", "state", "handoff"}
    assert [i["name"] for i in first["intents"]] == ["change_address", "order_status"]
    for intent in first["intents"]:
        assert set(intent) == {"name", "confidence", "slots"}
    assert all(o["state"] in ("active", "handoff", "ended") for o in objs)


def _chat_at(tmp_path: Path, config: str, score: float) -> tuple[list[dict], str]:
    cfg = tmp_path / "voicebot.yaml"
    cfg.write_text(f"database:\n  url: sqlite:///{tmp_path / 'c.db'}\n  seed_demo: true\n" + config)
    lines = [json.dumps({"text": "where is my order", "signals": {"frustration": score}}), "yes please"]
    result = run(["chat", "--json", "--config", str(cfg)], cwd=tmp_path, stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def test_prosody_thresholds_grade_the_dialog(tmp_path):
    """prosody.annoyed / prosody.frustrated are the dialog's thresholds too: 0.55 is only annoyed by default,
    frustrated (a human offered, then the hand-off packet says so) once prosody.frustrated is 0.5."""
    objs, _ = _chat_at(tmp_path, "", 0.55)
    assert objs[0]["trace"]["style"] == "calm" and objs[0]["state"] == "active"
    assert "colleague" not in objs[0]["bot"].lower()
    objs, _ = _chat_at(tmp_path, "prosody:\n  annoyed: 0.6\n  frustrated: 0.8\n", 0.55)
    assert objs[0]["trace"]["style"] == "default"  # not even annoyed any more
    # with a person to hand over to (without one the caller is offered a callback: tests/conversations/slots.yaml)
    people = "agents:\n  - id: alice\n    contact: sip:alice@127.0.0.1:5099\nqueues:\n  - name: general\n"
    objs, _ = _chat_at(tmp_path, "prosody:\n  annoyed: 0.3\n  frustrated: 0.5\n" + people, 0.55)
    assert "colleague" in objs[0]["bot"].lower()
    assert objs[1]["state"] == "handoff"
    packet = objs[1]["handoff"]
    assert list(packet) == ["summary", "reason", "reason_text", "queue", "priority", "channel", "call_id",
                            "caller_id", "contact_id", "customer", "intents_done", "intents_pending", "slots",
                            "transcript", "frustration"]
    assert packet["reason"] == "frustration" and packet["frustration"]["level"] == "frustrated"


def test_old_dialog_threshold_keys_still_work_with_a_warning(tmp_path):
    objs, stderr = _chat_at(tmp_path, "dialog:\n  frustration_handoff: 0.5\n", 0.55)
    assert "colleague" in objs[0]["bot"].lower()
    assert "dialog.frustration_handoff is deprecated" in stderr and "prosody.frustrated" in stderr
    bad = tmp_path / "both.yaml"
    bad.write_text("dialog:\n  frustration_calm: 0.3\nprosody:\n  annoyed: 0.35\n")
    result = run(["config", "check", str(bad)], cwd=tmp_path)
    assert result.returncode != 0 and "prosody.annoyed" in result.stderr and "Traceback" not in result.stderr


def test_bench_latency_names_a_bad_config_and_exits_before_starting_a_server(tmp_path):
    cfg = tmp_path / "voicebot.yaml"
    cfg.write_text("log_level: INFO\nlog_level: DEBUG\n")
    result = run(["bench", "latency", "--config", str(cfg)], cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"{cfg}: 1 problem(s)\n  line 2, column 1: not valid YAML: key 'log_level' appears twice "
                             "in the same mapping (first at line 1, column 1)\n")
    cfg.write_text("call:\n  silence_prompt_s: [30\n")
    result = run(["bench", "latency", "--config", str(cfg)], cwd=tmp_path)
    assert result.returncode == 2 and f"{cfg}: 1 problem(s)\n  line 3, column 1: not valid YAML: " in result.stderr
    assert "Traceback" not in result.stderr
