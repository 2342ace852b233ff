"""Reading an integrator's YAML strictly: a key written twice in one mapping is an error, not a silent overwrite.

PyYAML's ``safe_load`` keeps the last of two equal keys without a word, so a second ``expect:`` or ``intents:``
block silently drops the first. Every file voicebot reads from an integrator (voicebot.yaml, the domain's YAML,
knowledge front matter, not-answered.yaml) goes through :func:`load_yaml`; :func:`yaml_fault` turns any
``yaml.YAMLError`` into the line, column and problem each reader reports in its own error class.

It lives in ``dialogs/`` because both ``dialogs/`` and ``voicebot/`` read YAML and ``dialogs/`` may not import
``voicebot/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, ScalarNode

MERGE_TAG = "tag:yaml.org,2002:merge"


def _repeated(key: object, first: Mark, first_line: int) -> str:
    return (f"key {key!r} appears twice in the same mapping "
            f"(first at line {first.line + first_line}, column {first.column + 1})")


class RepeatedKeyError(yaml.MarkedYAMLError):
    """A mapping that names ``key`` twice; ``context_mark`` is the first occurrence, ``problem_mark`` the second."""

    def __init__(self, key: object, first: Mark, second: Mark):
        super().__init__("while reading a mapping", first, _repeated(key, first, 1), second)
        self.key = key
        self.first_mark = first


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping. Anchors, aliases and merge keys (``<<:``)
    work as in ``safe_load``: a key given in the mapping itself may still override one it merges."""

    def compose_mapping_node(self, anchor: Any) -> MappingNode:  # the anchor's name (types-PyYAML says a dict)
        node = super().compose_mapping_node(anchor)
        seen: dict[Any, Mark] = {}
        # Checked while composing, before ``<<:`` merges are flattened into the mapping, so only the keys
        # written in this mapping count.
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                continue  # a complex key is left to the constructor, which refuses unhashable ones
            key = self.construct_object(key_node)  # equal values count as one key: `yes:` and `true:` both
            if key in seen:
                raise RepeatedKeyError(key, seen[key], key_node.start_mark)
            seen[key] = key_node.start_mark
        return node


def load_yaml(stream: str | bytes | IO[str] | IO[bytes]) -> Any:
    """The one YAML document in ``stream``, as ``yaml.safe_load`` reads it, except that a key repeated in a
    mapping raises :class:`RepeatedKeyError` (a ``yaml.YAMLError``)."""
    return yaml.load(stream, Loader=StrictLoader)  # a SafeLoader: no arbitrary objects


@dataclass(frozen=True)
class YamlFault:
    """Where a YAML text is wrong (1-based line and column, or None if the parser did not say) and what is wrong."""

    line: int | None
    column: int | None
    problem: str

    @property
    def where(self) -> str:
        return "(file)" if self.line is None else f"line {self.line}, column {self.column}"

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


def yaml_fault(exc: yaml.YAMLError, first_line: int = 1) -> YamlFault:
    """The line, column and problem of a YAML error. ``first_line`` is the file's line number of the text's first
    line, for YAML cut out of a longer file (a Markdown file's front matter starts on line 2)."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, RepeatedKeyError):
        problem = _repeated(exc.key, exc.first_mark, first_line)
    else:
        problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return YamlFault(None, None, problem)
    return YamlFault(mark.line + first_line, mark.column + 1, problem)
