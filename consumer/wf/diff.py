"""What changed between two versions of a workflow definition (`wf diff NAME V1 V2`), as lines a person reads:
top-level settings changed, steps added or removed, and for a changed step each key that differs (nested keys
by dotted path)."""

from __future__ import annotations

from typing import Any

import orjson


def _show(value: Any) -> str:
    return orjson.dumps(value).decode()


def _changes(old: Any, new: Any, path: str) -> list[str]:
    """`path: old → new` for every leaf that differs; objects are compared key by key."""
    if isinstance(old, dict) and isinstance(new, dict):
        lines: list[str] = []
        for key in sorted(old.keys() | new.keys()):
            where = f"{path}.{key}" if path else key
            if key not in new:
                lines.append(f"{where}: {_show(old[key])} → (removed)")
            elif key not in old:
                lines.append(f"{where}: (added) {_show(new[key])}")
            else:
                lines.extend(_changes(old[key], new[key], where))
        return lines
    return [] if old == new else [f"{path}: {_show(old)} → {_show(new)}"]


def _kind(step: dict[str, Any]) -> str:
    for key in ("function", "workflow", "sql"):
        if key in step:
            return f"{step[key]}.{step['action']}" if key == "function" and "action" in step else f"{key} {step[key]}"
    return "wait_for" if "wait_for" in step else "?"


def diff(name: str, old_version: int, old: dict[str, Any], new_version: int, new: dict[str, Any]) -> list[str]:
    lines = [f"workflow {name}: version {old_version} → {new_version}"]
    settings_old = {k: v for k, v in old.items() if k != "steps"}
    settings_new = {k: v for k, v in new.items() if k != "steps"}
    lines += [f"  {line}" for line in _changes(settings_old, settings_new, "")]
    steps_old = {s.get("name"): s for s in old.get("steps", []) if isinstance(s, dict)}
    steps_new = {s.get("name"): s for s in new.get("steps", []) if isinstance(s, dict)}
    for step in [s for s in steps_old if s not in steps_new]:
        lines.append(f"  - step {step} ({_kind(steps_old[step])})")
    for step in [s for s in steps_new if s not in steps_old]:
        lines.append(f"  + step {step} ({_kind(steps_new[step])})")
    for step in [s for s in steps_new if s in steps_old]:
        lines += [f"  ~ step {step}: {line}" for line in _changes(steps_old[step], steps_new[step], "")]
    order_old = [s for s in steps_old if s in steps_new]
    order_new = [s for s in steps_new if s in steps_old]
    if order_old != order_new:
        lines.append(f"  steps reordered: {', '.join(order_old)} → {', '.join(order_new)}")
    if len(lines) == 1:
        lines.append("  no change")
    return lines
