"""A knowledge folder: one Markdown file per topic, its YAML front matter holding the entry.

    ---
    id: opening_hours                 # optional: the file name (dashes as underscores) by default
    questions:                        # how callers ask; more varied beats more similar
      - what are your opening hours
      - when are you open
    answer: We're open Monday to Friday from 8 a.m. to 8 p.m.   # spoken: one or two short sentences
    ---
    Optional longer text below the front matter, for chat and for agents.

An optional ``not-answered.yaml`` in the folder lists questions callers ask that the knowledge base does not
answer, near its topics but not in them ("do you gift wrap", "are you hiring"); a question more like one of them
than like any entry's question gets "I don't know" instead of the nearest entry::

    questions:
      - can you wrap it as a present

Other files are ignored. Every fault is a :class:`KnowledgeError` naming file, entry and problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dialogs.strict_yaml import load_yaml, yaml_fault

FIELDS = ("id", "questions", "answer")
ID = re.compile(r"^[a-z][a-z0-9_]*$")
NOT_ANSWERED = "not-answered.yaml"
# A spoken answer longer than this is a text to read, not an answer to say: put the rest in the body.
MAX_ANSWER_CHARS = 300


@dataclass(frozen=True)
class KnowledgeEntry:
    id: str
    questions: tuple[str, ...]
    answer: str  # spoken: one or two sentences
    text: str | None  # the longer text, for chat and agents
    source: str  # the file it came from


@dataclass(frozen=True)
class KnowledgeBase:
    entries: tuple[KnowledgeEntry, ...]
    folder: str
    not_answered: tuple[str, ...] = ()  # questions near its topics that it does not answer (NOT_ANSWERED)

    def get(self, entry_id: str) -> KnowledgeEntry:
        for e in self.entries:
            if e.id == entry_id:
                return e
        raise KeyError(entry_id)

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]


class KnowledgeError(Exception):
    """A knowledge folder that cannot be used; ``problems`` is a list of ``(file, entry, message)``."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}: {e}: {m}" for f, e, m in problems))


def _split(text: str) -> tuple[str, str] | None:
    """Front matter and body of a Markdown file, or None if it has no front matter."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[1:i]), "".join(lines[i + 1:])
    return None


def parse_entry(path: Path) -> tuple[KnowledgeEntry | None, list[tuple[str, str, str]]]:
    """One file's entry, or the problems that keep it from being one."""
    src = str(path)
    default_id = path.stem.replace("-", "_").lower()
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [(src, default_id, f"cannot read: {exc}")]
    parts = _split(raw)
    if parts is None:
        return None, [(src, default_id, "no front matter: the file must start with a '---' line, the entry's YAML "
                                        "(questions:, answer:) and another '---' line")]
    head, body = parts
    try:
        data: Any = load_yaml(head)
    except yaml.YAMLError as exc:
        fault = yaml_fault(exc, first_line=2)  # line 1 is the opening '---'
        return None, [(src, default_id, f"front matter is not valid YAML at {fault}")]
    if not isinstance(data, dict):
        return None, [(src, default_id, "front matter must be a mapping with questions: and answer:")]
    entry_id = data.get("id", default_id)
    problems: list[tuple[str, str, str]] = []
    if not isinstance(entry_id, str) or not ID.match(entry_id):
        problems.append((src, str(entry_id), "id must be lower-case letters, digits and underscores"))
        entry_id = default_id
    for key in data:
        if key not in FIELDS:
            from difflib import get_close_matches

            near = get_close_matches(str(key), FIELDS, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else f" (allowed: {', '.join(FIELDS)})"
            problems.append((src, entry_id, f"unknown key '{key}'{hint}"))
    questions = data.get("questions")
    if isinstance(questions, str):
        questions = [questions]
    if not isinstance(questions, list) or not questions:
        problems.append((src, entry_id, "questions: needs at least one question"))
        questions = []
    for i, q in enumerate(questions):
        if not isinstance(q, str) or not q.strip():
            problems.append((src, entry_id, f"questions.{i} is empty or not text"))
    answer = data.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        problems.append((src, entry_id, "answer: is missing (one or two short sentences to say)"))
    elif len(answer) > MAX_ANSWER_CHARS:
        problems.append((src, entry_id, f"answer: is {len(answer)} characters; keep the spoken answer under "
                                        f"{MAX_ANSWER_CHARS} and put the rest below the front matter"))
    if problems:
        return None, problems
    assert isinstance(answer, str)
    text = body.strip() or None
    return KnowledgeEntry(entry_id, tuple(q.strip() for q in questions), answer.strip(), text, src), []


def parse_not_answered(path: Path) -> tuple[tuple[str, ...], list[tuple[str, str, str]]]:
    """The questions of a ``not-answered.yaml`` file, or the problems that keep them from being used."""
    src, what = str(path), "(not answered)"
    try:
        data: Any = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return (), [(src, what, f"cannot read: {exc}")]
    except yaml.YAMLError as exc:
        return (), [(src, what, f"not valid YAML at {yaml_fault(exc)}")]
    if not isinstance(data, dict) or set(data) != {"questions"}:
        return (), [(src, what, "must be a mapping with one key, questions: (a list of questions)")]
    questions = data["questions"]
    if not isinstance(questions, list) or not questions:
        return (), [(src, what, "questions: needs at least one question")]
    problems = [(src, what, f"questions.{i} is empty or not text")
                for i, q in enumerate(questions) if not isinstance(q, str) or not q.strip()]
    return (() if problems else tuple(q.strip() for q in questions)), problems


def load_knowledge(folder: str | Path) -> KnowledgeBase:
    """Read every ``*.md`` entry of ``folder`` and its ``not-answered.yaml`` if there is one. Raises
    :class:`KnowledgeError` listing every fault."""
    root = Path(folder)
    if not root.is_dir():
        raise KnowledgeError([(str(root), "(folder)", "knowledge folder not found")])
    files = sorted(root.glob("*.md"))
    if not files:
        raise KnowledgeError([(str(root), "(folder)", "no .md entries in the knowledge folder")])
    entries: list[KnowledgeEntry] = []
    problems: list[tuple[str, str, str]] = []
    seen: dict[str, str] = {}
    for path in files:
        entry, errs = parse_entry(path)
        problems += errs
        if entry is None:
            continue
        if entry.id in seen:
            problems.append((str(path), entry.id, f"duplicate id: also used by {seen[entry.id]}"))
            continue
        seen[entry.id] = str(path)
        entries.append(entry)
    not_answered: tuple[str, ...] = ()
    if (root / NOT_ANSWERED).is_file():
        not_answered, errs = parse_not_answered(root / NOT_ANSWERED)
        problems += errs
    if problems:
        raise KnowledgeError(problems)
    return KnowledgeBase(tuple(entries), str(root), not_answered)
