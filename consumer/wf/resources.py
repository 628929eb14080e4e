"""Where sql/ (the schema as code, read by wf.catalog) and the workflow templates live, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent.parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _CHECKOUT / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"wf: cannot find the {name}/ folder next to {_PACKAGE}")


def sql_dir() -> Path:
    return _find("sql")


def templates_dir() -> Path:
    return _find("templates")
