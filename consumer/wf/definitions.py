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
        fields = [("when", step["when"])] if isinstance(step.get("when"), str) else []
        for place, text in [*_strings(step.get("payload_template"), "payload_template"), *fields]:
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
