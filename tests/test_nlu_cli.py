"""`voicebot nlu` and `voicebot eval nlu` as an integrator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run(args: list[str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEBOT_")}
    return subprocess.run([sys.executable, "-m", "voicebot", *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=180)


def test_nlu_prints_intents_as_json(tmp_path: Path) -> None:
    result = run(["nlu", "I moved, so update my address and tell me where my order is"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["text"] == "I moved, so update my address and tell me where my order is"
    assert [i["name"] for i in data["intents"]] == ["change_address", "order_status"]
    assert all(set(i) == {"name", "confidence", "slots"} for i in data["intents"])


def test_nlu_jsonl_one_object_per_line(tmp_path: Path) -> None:
    lines = ["where is order four five two eight one", "", "😀", "yes", "x" * 10_000]
    result = run(["nlu", "--jsonl"], cwd=tmp_path, stdin="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["text"] for o in out] == lines
    assert out[0]["intents"][0] == {"name": "order_status", "confidence": out[0]["intents"][0]["confidence"],
                                    "slots": {"order_id": "45281"}}
    assert out[1]["intents"][0]["name"] == "out_of_scope"
    assert out[3]["intents"][0]["name"] == "affirm"


def test_eval_nlu_report_and_bad_files(tmp_path: Path) -> None:
    data = tmp_path / "small.tsv"
    data.write_text(
        "utterance\tintents\tslots\n"
        "where is order four five two eight one\torder_status\torder_id=45281\n"
        "reset my password and cancel my subscription\treset_password,cancel_subscription\n"
        "tell me a joke\tout_of_scope\n"
        "hello\tgoodbye\n"  # deliberately wrong: the report must count it as an error
    )
    result = run(["eval", "nlu", str(data), "--json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 4
    assert report["exact_match"] == 0.75
    assert report["multi"] == {"n": 1, "accuracy": 1.0}
    assert report["slots"]["f1"] == 1.0
    assert report["per_intent"]["goodbye"]["recall"] == 0.0
    assert [e["line"] for e in report["errors"]] == [5]

    text = run(["eval", "nlu", str(data)], cwd=tmp_path)
    assert "intent-set exact match: 75.0%" in text.stdout

    bad = tmp_path / "bad.tsv"
    bad.write_text("utterance\tintents\njust one column\n")
    for path in (bad, tmp_path / "missing.tsv"):
        result = run(["eval", "nlu", str(path)], cwd=tmp_path)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr and str(path.name) in result.stderr


def test_a_day_that_is_not_a_date_is_a_usage_error_naming_today(tmp_path: Path) -> None:
    data = tmp_path / "small.tsv"
    data.write_text("utterance\tintents\nwhere is my order\torder_status\n")
    for args in (["nlu", "--today", "2025-13-01", "hello"], ["eval", "nlu", str(data), "--today", "2025-13-01"],
                 ["eval", "spoken", str(data), "--today", "2025-13-01"]):
        result = run(args, cwd=tmp_path)
        assert result.returncode == 2, args
        assert "Invalid value for --today: '2025-13-01' is not a date like 2025-01-15" in result.stderr, args
