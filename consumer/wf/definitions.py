"""Read workflow definition files for `wf define`, checking templates with Jinja's own parser.

wf.define validates everything again in SQL; this adds the exact Jinja syntax error
and the file it came from, and lets one broken file not stop the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment()
TEMPLATE_KEYS = ("payload_template", "input_template", "args_template")


@dataclass
class DefinitionFileError:
    path: Path
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def _strings(value: Any, place: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield place, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{place}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{place}[{i}]")


def template_problems(definition: dict[str, Any]) -> list[str]:
    """Jinja syntax errors in the definition's templates, each naming the step and field."""
    problems = []
    steps = definition.get("steps")
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, dict):
            continue
        name = step.get("name", "?")
        fields = [(key, step[key]) for key in ("when", "not_before") if isinstance(step.get(key), str)]
        templates = [place_text for key in TEMPLATE_KEYS for place_text in _strings(step.get(key), key)]
        for place, text in [*templates, *fields]:
            try:
                _ENV.parse(text)
            except TemplateSyntaxError as exc:
                problems.append(f"step {name}: {place}: template does not parse: {exc.message}")
    return problems


def _json_files(paths: Iterable[Path], errors: list[DefinitionFileError]) -> Iterator[Path]:
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            errors.append(DefinitionFileError(path, "no .json files in this folder"))
        yield from files


def load_definition_files(paths: Iterable[Path]) -> tuple[list[tuple[Path, dict[str, Any]]], list[DefinitionFileError]]:
    loaded: list[tuple[Path, dict[str, Any]]] = []
    errors: list[DefinitionFileError] = []
    for path in _json_files(paths, errors):
        try:
            definition = orjson.loads(path.read_bytes())
        except OSError as exc:
            errors.append(DefinitionFileError(path, f"cannot read: {exc.strerror}"))
            continue
        except orjson.JSONDecodeError as exc:
            errors.append(DefinitionFileError(path, f"not valid JSON: {exc}"))
            continue
        if not isinstance(definition, dict):
            errors.append(DefinitionFileError(path, "a definition must be a JSON object"))
            continue
        problems = template_problems(definition)
        if problems:
            errors.extend(DefinitionFileError(path, p) for p in problems)
            continue
        loaded.append((path, definition))
    return loaded, errors


def children_first(loaded: list[tuple[Path, dict[str, Any]]]) -> list[tuple[Path, dict[str, Any]]]:
    """The definitions in an order wf.define accepts: a workflow a `workflow` step runs is defined before
    the definition that names it (otherwise file order). A cycle is left as it is for wf.define to refuse."""
    by_name = {d.get("name"): (path, d) for path, d in loaded}
    ordered: list[tuple[Path, dict[str, Any]]] = []
    placed: set[int] = set()
    visiting: set[int] = set()

    def place(item: tuple[Path, dict[str, Any]]) -> None:
        key = id(item[1])
        if key in placed or key in visiting:
            return
        visiting.add(key)
        steps = item[1].get("steps")
        for step in steps if isinstance(steps, list) else []:
            child = step.get("workflow") if isinstance(step, dict) else None
            if isinstance(child, str) and child in by_name:
                place(by_name[child])
        visiting.discard(key)
        placed.add(key)
        ordered.append(item)

    for item in loaded:
        place(item)
    return ordered
