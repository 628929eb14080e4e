"""CONTRIBUTING.md's map (behaviour → file → test) stays true when things move."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "CONTRIBUTING.md").read_text()
# `path`, `path::test_name`, and further names of the same file: `, `test_other``
_REF = re.compile(r"`((?:sql|consumer|tests|supabase|scripts|templates)/[^`*]+?)(?:::(test_\w+))?`")


def references() -> list[tuple[str, str | None]]:
    refs = []
    for line in TEXT.splitlines():
        current = None
        for m in re.finditer(r"`([^`]+)`", line):
            ref = _REF.fullmatch(m.group(0))
            if ref:
                current = ref.group(1)
                refs.append((current, ref.group(2)))
            elif current and m.group(1).startswith("test_") and current.endswith(".py"):
                refs.append((current, m.group(1)))  # another test of the file named before it
            elif current and current.startswith("sql/functions/") and re.fullmatch(r"\w+\.sql", m.group(1)):
                refs.append((f"sql/functions/{m.group(1)}", None))  # a sibling file named short
    return refs


def test_the_map_names_files_and_tests_that_exist():
    refs = references()
    assert len(refs) > 60
    missing = []
    for path, test in refs:
        if "<" in path or "NNNN" in path or " " in path:
            continue  # a pattern such as sql/views/<name>.sql, or a command
        target = REPO / path
        if not target.exists():
            missing.append(path)
        elif test and not re.search(rf"^(async )?def {test}\(", target.read_text(), re.MULTILINE):
            missing.append(f"{path}::{test}")
    assert missing == []


def test_the_map_answers_where_a_retrys_delay_is_decided():
    [row] = [line for line in TEXT.splitlines() if "a retry's delay" in line]
    assert "`sql/functions/backoff_delay.sql`" in row
    assert "create or replace function wf.backoff_delay(" in (REPO / "sql/functions/backoff_delay.sql").read_text()
