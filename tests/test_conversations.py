"""The written conversation suite: multi-turn scripted conversations in ``tests/conversations/*.yaml``, each
run through ``voicebot chat --json`` (the click command, in this process) against a fresh copy of the demo
database, asserting on what the caller hears and on the database afterwards.

A file holds a list of conversations::

    - name: the caller's address change stores street, city and postcode
      caller_id: "+15551230001"        # optional: the number the caller rings from
      config: {dialog: {max_no_match: 2}}  # optional: extra voicebot.yaml keys
      turns:
        - say: "I moved, please change my address"     # or  dtmf: "4321#"  or  json: {text:, signals:}
          expect: ["address"]          # regular expressions the bot's reply must match (case-insensitive)
          reject: ["doesn't match"]    # ... and must not match
          state: active                # optional: active | handoff | ended
          intents: [change_address]    # optional: the NLU's intents for this turn, in order
      db:                              # checked after the conversation ended
        - sql: "SELECT city, postcode FROM customers WHERE phone = '+15551230001'"
          rows: [["Chicago", "60614"]]

See tests/conversations/README.md for what each file covers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from demo_db import demo_copy
from sqlalchemy import create_engine, text

from dialogs.strict_yaml import load_yaml, yaml_fault
from voicebot.cli.chat import chat

HERE = Path(__file__).parent / "conversations"


def _load(folder: Path = HERE) -> list[Any]:
    """Every conversation of ``folder``, read as strictly as the product reads YAML: a turn that repeats
    ``expect:`` fails at collection, naming the file and line, instead of silently losing the first one."""
    cases = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            convs = load_yaml(path.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: {yaml_fault(exc)}") from None
        for conv in convs or []:
            cases.append(pytest.param(conv, id=f"{path.stem}: {conv['name']}"))
    return cases


CASES = _load()


def _line(turn: dict[str, Any]) -> str:
    if "json" in turn:
        return json.dumps(turn["json"])
    if "dtmf" in turn:
        return json.dumps({"text": turn.get("say", ""), "dtmf": str(turn["dtmf"])})
    return str(turn.get("say", ""))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def test_the_suite_has_at_least_forty_conversations() -> None:
    assert len(CASES) >= 40, f"only {len(CASES)} scripted conversations in {HERE}"


def test_a_turn_that_repeats_expect_fails_collection_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "typo.yaml").write_text(
        "- name: hours\n  turns:\n    - say: when do you open\n      expect: [nine]\n      expect: [five]\n")
    with pytest.raises(ValueError) as err:
        _load(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'typo.yaml'}: line 5, column 7: key 'expect' appears twice in the same "
                              "mapping (first at line 4, column 7)")


@pytest.mark.parametrize("conv", CASES)
def test_conversation(conv: dict[str, Any], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    url = demo_copy(tmp_path, tmp_path_factory)
    config = _merge({"database": {"url": url, "seed_demo": False, "auto_upgrade": True}}, conv.get("config") or {})
    cfg = tmp_path / "voicebot.yaml"
    cfg.write_text(yaml.safe_dump(config))
    args = ["--json", "--config", str(cfg)]
    if conv.get("caller_id"):
        args += ["--caller-id", str(conv["caller_id"])]
    if conv.get("channel"):
        args += ["--channel", str(conv["channel"])]
    turns = conv["turns"]
    stdin = "".join(_line(t) + "\n" for t in turns)
    result = CliRunner().invoke(chat, args, input=stdin, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    replies = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(replies) == len(turns), result.output
    transcript = "\n".join(f"caller: {r['user']}\nbot: {r['bot']}" for r in replies)
    if "greeting" in conv:
        for pattern in conv["greeting"].get("expect", []):
            assert re.search(pattern, replies[0].get("greeting", ""), re.I), replies[0].get("greeting")
    for n, (turn, reply) in enumerate(zip(turns, replies, strict=True), 1):
        where = f"turn {n} ({turn.get('say') or turn.get('dtmf') or turn.get('json')!r}) heard {reply['bot']!r}\n{transcript}"
        for pattern in turn.get("expect", []):
            assert re.search(pattern, reply["bot"], re.I), f"expected /{pattern}/ at {where}"
        for pattern in turn.get("reject", []):
            assert not re.search(pattern, reply["bot"], re.I), f"did not expect /{pattern}/ at {where}"
        if "state" in turn:
            assert reply["state"] == turn["state"], f"state {reply['state']} at {where}"
        if "intents" in turn:
            assert [i["name"] for i in reply["intents"]] == turn["intents"], f"intents {reply['intents']} at {where}"
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            for check in conv.get("db", []):
                rows = [list(r) for r in db.execute(text(check["sql"])).all()]
                want = [[str(v) if v is not None else None for v in row] for row in check["rows"]]
                got = [[str(v) if v is not None else None for v in row] for row in rows]
                assert got == want, f"{check['sql']} gave {got}, expected {want}\n{transcript}"
    finally:
        engine.dispose()
