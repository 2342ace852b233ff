"""The agents: and queues: config sections, their cross checks and `voicebot config check`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from telephony.queue.config import AgentConfig, QueueConfig, check_queues
from voicebot.cli import cli
from voicebot.config import ConfigError, load_settings

GOOD = """
agents:
  - {id: alice, name: Alice, contact: "sip:alice@10.0.0.5", skills: [billing, tech], max_calls: 1}
  - {id: bob, contact: webrtc, skills: [billing]}
queues:
  - {name: general}
  - {name: retention, skills: [billing], strategy: round_robin, fallback: voicemail}
  - {name: tech, skills: [tech], strategy: ring_all, agent_confirm: true, priority_rules: {frustrated: 5}}
"""


def test_sections_load_from_yaml_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "voicebot.yaml"
    f.write_text(GOOD)
    s = load_settings(f)
    assert [a.id for a in s.agents] == ["alice", "bob"]
    assert s.agents[1].contact == "webrtc" and s.agents[1].display_name == "bob"
    assert [(q.name, q.strategy) for q in s.queues] == [
        ("general", "longest_idle"),
        ("retention", "round_robin"),
        ("tech", "ring_all"),
    ]
    assert s.queues[2].priority_rules == {"frustrated": 5}
    monkeypatch.setenv("VOICEBOT_QUEUES", '[{"name": "only", "wrap_up": 3}]')
    assert [(q.name, q.wrap_up) for q in load_settings(f).queues] == [("only", 3.0)]


def test_bad_values_are_reported_by_key(tmp_path: Path) -> None:
    f = tmp_path / "voicebot.yaml"
    f.write_text(
        "agents:\n  - {id: a, contact: 'tel:+49301234'}\n"
        "queues:\n  - {name: q, strategy: random, callback_key: '12', priority_rules: {angry: 3},"
        " blind_transfer_to: 'pbx'}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    keys = {k for k, _ in err.value.problems}
    assert keys == {
        "agents.0.contact",
        "queues.0.strategy",
        "queues.0.callback_key",
        "queues.0.priority_rules",
        "queues.0.blind_transfer_to",
    }


def test_check_queues_finds_unservable_queues_and_duplicates() -> None:
    agents = [AgentConfig(id="a", skills=["billing"]), AgentConfig(id="a", skills=["tech"])]
    queues = [
        QueueConfig(name="general"),
        QueueConfig(name="vip", skills=["billing", "tech"]),
        QueueConfig(name="fr", skills=["french"]),
        QueueConfig(name="general"),
        QueueConfig(name="ext", skills=["nobody"], blind_transfer_to="sip:ext@pbx"),
    ]
    problems = dict(check_queues(agents, queues, {"general", "retention"}))
    assert set(problems) == {"agents.1.id", "queues.1.skills", "queues.2.skills", "queues.3.name", "queues"}
    assert "french" in problems["queues.2.skills"]
    assert "retention" in problems["queues"]
    assert check_queues([], [], {"general"}) == []  # no queue configured: nothing to check


def test_config_check_lists_queue_problems(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = CliRunner().invoke(cli, ["config", "check", str(good)])
    assert result.exit_code == 0, result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("skills: [tech], strategy", "skills: [linux], strategy"))
    result = CliRunner().invoke(cli, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert "queues.2.skills" in result.output and "linux" in result.output
