"""Read a domain from YAML: a folder (``domain.yaml`` + ``nlu.yaml``) or a single file.

Every fault is reported as ``DomainError`` naming the file, the key path and what is wrong.
"""

from __future__ import annotations

import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dialogs.domain.schema import DIALOG_ACTS, Domain, did_you_mean, reference_problems
from dialogs.knowledge.base import KnowledgeError, load_knowledge
from dialogs.strict_yaml import load_yaml, yaml_fault

BUNDLED = "retail"


class DomainError(Exception):
    """A domain that cannot be used; ``problems`` is a list of ``(file, key path, message)``."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{f}: {k}: {m}" for f, k, m in problems))


def bundled_domain_path(name: str = BUNDLED) -> Path:
    """The folder of a domain shipped inside the package (the retail demo by default)."""
    return Path(str(resources.files("dialogs.domains") / name))


def _read(path: Path) -> dict[str, Any]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DomainError([(str(path), "(file)", "file not found")]) from None
    except yaml.YAMLError as exc:
        fault = yaml_fault(exc)
        raise DomainError([(str(path), fault.where, f"not valid YAML: {fault.problem}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DomainError([(str(path), "(top level)", "must be a mapping with keys such as intents:, slots:")])
    return data


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows where ``loc`` (a pydantic error location ending in the unknown key) points."""
    model: Any = Domain
    for part in loc[:-1]:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                return []
            model = field.annotation
        else:  # a dict value or list item: its element type
            args = [a for a in typing.get_args(model) if isinstance(a, type) and issubclass(a, BaseModel)]
            if not args:
                inner = [typing.get_args(a) for a in typing.get_args(model)]
                args = [x for group in inner for x in group if isinstance(x, type) and issubclass(x, BaseModel)]
            if not args:
                return []
            model = args[-1]
        while typing.get_origin(model) is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            inner = [a for a in typing.get_args(model) if a is not type(None)]
            if len(inner) != 1:
                break
            model = inner[0]
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _nlu_only_intents(files: list[tuple[Path, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """Intents that only a file of examples (nlu.yaml) names: the domain file lacks them, so they have no flow."""
    if len(files) < 2:
        return []
    declared: set[str] = set()
    only_examples: dict[str, Path] = {}
    for path, data in files:
        intents = data.get("intents")
        if not isinstance(intents, dict):
            continue
        examples_file = all(isinstance(b, dict) and b and set(b) <= {"examples"} for b in intents.values())
        for name in intents:
            if examples_file:
                only_examples.setdefault(name, path)
            else:
                declared.add(name)
    problems = []
    for name, path in only_examples.items():
        if name not in declared and name not in DIALOG_ACTS:
            problems.append((str(path), f"intents.{name}", "has examples but the domain file does not declare this "
                             "intent" + did_you_mean(name, declared)))
    return problems


def _merge(files: list[tuple[Path, dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Merge the files; intents' keys from several files are combined. Returns data and key -> file origin."""
    merged: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    for path, data in files:
        for key, value in data.items():
            if key == "intents" and isinstance(value, dict):
                intents = merged.setdefault("intents", {})
                for iname, body in value.items():
                    cur = intents.setdefault(iname, {})
                    if isinstance(body, dict) and isinstance(cur, dict):
                        for k, v in body.items():
                            cur[k] = v
                            origin[f"intents.{iname}.{k}"] = path
                    else:
                        intents[iname] = body
                    origin.setdefault(f"intents.{iname}", path)
            elif key == "version":
                merged[key] = value
            elif key in merged and isinstance(merged[key], dict) and isinstance(value, dict):
                merged[key].update(value)
                for k in value:
                    origin[f"{key}.{k}"] = path
            else:
                merged[key] = value
                origin[key] = path
    return merged, origin


def _origin(key: str, origin: dict[str, Path], default: Path) -> str:
    parts = key.split(".")
    for n in range(len(parts), 0, -1):
        p = origin.get(".".join(parts[:n]))
        if p is not None:
            return str(p)
    return str(default)


def load_domain(path: str | Path | None = None) -> Domain:
    """Load and validate a domain. ``None`` loads the bundled retail demo."""
    root = Path(path) if path is not None else bundled_domain_path()
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml"))
        if not files:
            raise DomainError([(str(root), "(folder)", "no .yaml files in the domain folder")])
    elif root.exists():
        files = [root]
    else:
        raise DomainError([(str(root), "(file)", "domain file or folder not found")])
    loaded = [(f, _read(f)) for f in files]
    data, origin = _merge(loaded)
    try:
        domain = Domain.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key" + did_you_mean(str(err["loc"][-1]), _allowed_keys(tuple(err["loc"])))
            problems.append((_origin(key, origin, files[0]), key, msg))
        raise DomainError(problems) from None
    from dialogs.actions import ACTION_DATA  # registers the bundled actions

    refs = [(_origin(k, origin, files[0]), k, m) for k, m in reference_problems(domain, ACTION_DATA)]
    refs += _nlu_only_intents(loaded)
    if domain.knowledge is not None:
        # Relative to the file that names it, so a domain folder can be moved as a whole.
        base = Path(_origin("knowledge", origin, files[0])).parent
        folder = (base / domain.knowledge).resolve()
        try:
            load_knowledge(folder)
        except KnowledgeError as exc:
            refs += [(f, f"knowledge: {entry}", m) for f, entry, m in exc.problems]
        domain.knowledge = str(folder)
    if refs:
        raise DomainError(refs)
    return domain
