"""Render a step's payload_template (input_template, args_template), `when` and `not_before` over the run's context.

Jinja2 in a sandbox with StrictUndefined: a template cannot reach Python internals,
and a missing variable is an error naming the variable, never an empty string.
A string that is exactly one `{{ expr }}` keeps the JSON type of its value.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
# `{{-` and `-}}` are Jinja's whitespace control, not part of the expression (`{{-n}}` is n, not -n)
_SINGLE_EXPRESSION = re.compile(r"^\s*\{\{-?(?P<expr>(?:(?!\{\{|\}\}).)*?)-?\}\}\s*$", re.S)
_FALSE_WORDS = {"", "0", "false", "no", "off", "none", "null"}
# a plain path (`n`, `input.email`, `steps.create.output.id`): looked up without Jinja, the most
# common template by far; anything else, or a path Jinja would read differently, goes to Jinja
_PLAIN_PATH = re.compile(r"^\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*$")
_MISSING = object()


class RenderError(ValueError):
    """A template that does not render; the message names the step and the place."""


def build_context(context: dict[str, Any]) -> dict[str, Any]:
    """What templates see: the input at top level and as `input`, plus `steps` and `run` — and for an item
    of a map step `item` and `item_index`."""
    run_input = context.get("input") or {}
    ctx = {**run_input, "input": run_input, "steps": context.get("steps") or {}, "run": context.get("run") or {}}
    if context.get("item_index") is not None:
        ctx["item"], ctx["item_index"] = context.get("item"), context["item_index"]
    return ctx


MAX_ITEMS = 1000  # for_each: the most items a map step may have (DESIGN §10)


def render_items(template: str, ctx: dict[str, Any], step: str) -> list[Any]:
    """A map step's for_each rendered to its list of items; RenderError names the step and what it got."""
    value = _render(template, ctx, f"step {step}: for_each")
    if not isinstance(value, list):
        raise RenderError(f"step {step}: for_each rendered {type(value).__name__} {str(value)[:80]!r}, not a list")
    if len(value) > MAX_ITEMS:
        raise RenderError(f"step {step}: for_each rendered {len(value)} items, more than the {MAX_ITEMS} allowed")
    return value


@lru_cache(maxsize=4096)
def _expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


@lru_cache(maxsize=4096)
def _template(source: str) -> Any:
    return _ENV.from_string(source)


def _native(value: Any) -> Any:
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises here, naming the variable
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _native(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_native(v) for v in value]
    return str(value)


@lru_cache(maxsize=4096)
def _plain_path(expr: str) -> tuple[str, ...] | None:
    match = _PLAIN_PATH.match(expr)
    return tuple(match.group(1).split(".")) if match else None


def _lookup(path: tuple[str, ...], ctx: dict[str, Any]) -> Any:
    """The value at a plain path, as Jinja finds it; _MISSING where Jinja might not read it the
    same way (a missing key, something that is not a dict, a key that is also a dict method)."""
    value: Any = ctx
    for i, key in enumerate(path):
        if not isinstance(value, dict) or (i and hasattr(dict, key)):
            return _MISSING
        value = value.get(key, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


@lru_cache(maxsize=4096)
def _single(source: str) -> str | None:
    single = _SINGLE_EXPRESSION.match(source)
    return single.group("expr") if single else None


def _render_string(source: str, ctx: dict[str, Any]) -> Any:
    if "{" not in source:
        return source
    expr = _single(source)
    if expr is not None:
        path = _plain_path(expr)
        if path is not None:
            value = _lookup(path, ctx)
            if value is not _MISSING:
                return _native(value)
        return _native(_expression(expr)(**ctx))
    return _template(source).render(ctx)


def _render(value: Any, ctx: dict[str, Any], place: str) -> Any:
    if isinstance(value, str):
        try:
            return _render_string(value, ctx)
        except TemplateError as exc:
            raise RenderError(f"{place}: {exc.message or exc}") from exc
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            raise RenderError(f"{place}: {type(exc).__name__}: {exc}") from exc
    if isinstance(value, dict):
        return {k: _render(v, ctx, f"{place}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, ctx, f"{place}[{i}]") for i, v in enumerate(value)]
    return value


def render_payload(template: Any, ctx: dict[str, Any], step: str, key: str = "payload_template") -> Any:
    """The payload for a call (or a child's input, a SQL step's args: `key` names the field);
    RenderError names the step and the field."""
    return _render(template, ctx, f"step {step}: {key}")


def render_not_before(template: str, offset_seconds: int, ctx: dict[str, Any], step: str) -> datetime:
    """The time a step may start: its not_before rendered to an ISO-8601 timestamp, plus offset_seconds.
    A value that is not a timestamp with a date is a RenderError naming it (a date alone means midnight
    UTC; a time without a zone is UTC)."""
    place = f"step {step}: not_before"
    value = _render(template, ctx, place)
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, date):
        when = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise RenderError(f"{place}: rendered {value!r}, not an ISO-8601 timestamp") from None
    else:
        raise RenderError(f"{place}: rendered {value!r}, not an ISO-8601 timestamp")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when + timedelta(seconds=offset_seconds)
    except OverflowError:
        raise RenderError(f"{place}: {value!r} plus {offset_seconds} s is out of range") from None


def render_when(template: str | None, ctx: dict[str, Any], step: str) -> bool:
    """Whether the step runs: a false-like result ("", 0, false, no, none, null) skips it."""
    if template is None:
        return True
    value = _render(template, ctx, f"step {step}: when")
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_WORDS
    return bool(value)
