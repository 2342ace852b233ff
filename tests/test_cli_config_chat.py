"""The command line as other parts and integrators use it: config check and chat --json."""

from __future__ import annotations

import json
import os
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
        env={"VOICEBOT_DATABASE__URL": f"sqlite:///{tmp_path / 'c.db'}"},
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
