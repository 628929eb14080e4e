"""One SQLSTATE table (wf.errors) for the worker, the CLI and the HTTP API: the TypeScript side agrees with it,
it covers every SQLSTATE the SQL raises and README documents, and its columns follow one rule. No database."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from wf import errors
from wfproc import REPO

SQLSTATES_TS = REPO / "supabase/functions/workflows/sqlstates.ts"
WORKFLOWS_TS = REPO / "supabase/functions/workflows/index.ts"
DENO = REPO / "node_modules/.bin/deno"
# a SQLSTATE of every row, of a class without an own row, and of none
PROBES = ["22023", "22P02", "22P05", "22021", "54000", "54001", "55000", "55P03", "55006", "P0002", "P0001",
          "P0004", "23505", "23514", "42501", "42883", "42P01", "40001", "40P01", "08006", "57P01", "53300",
          "XX000", "3F000"]


def ts_map() -> dict[str, int]:
    """CALLER_ERRORS of sqlstates.ts: SQLSTATE or class → HTTP status."""
    block = re.search(r"const CALLER_ERRORS = new Map<string, number>\(\[(.*?)\]\);", SQLSTATES_TS.read_text(), re.S)
    assert block, "sqlstates.ts: CALLER_ERRORS not found"
    entries = re.findall(r'\[\s*"([0-9A-Z]{2,5})"\s*,\s*(\d{3})\s*\]', block.group(1))
    assert len(entries) == block.group(1).count("["), "an entry of CALLER_ERRORS this test cannot read"
    return {code: int(status) for code, status in entries}


def python_http_map() -> dict[str, int]:
    return {s.code: s.http_status for s in errors.SQLSTATES if s.http_status != errors.HTTP_FAULT}


def test_the_typescript_map_is_the_http_column_of_the_table():
    assert ts_map() == python_http_map()


def test_the_typescript_lookup_is_own_code_then_class_then_500():
    text = SQLSTATES_TS.read_text()
    assert "CALLER_ERRORS.get(sqlstate) ?? CALLER_ERRORS.get(sqlstate.slice(0, 2))" in text
    index = WORKFLOWS_TS.read_text()
    assert 'import { callerErrorStatus } from "./sqlstates.ts";' in index
    assert 'json(req, { error: "internal error" }, 500)' in index  # what is not a caller's mistake
    assert errors.OTHER.http_status == errors.HTTP_FAULT == 500


@pytest.mark.skipif(not DENO.exists(), reason="Deno is installed by scripts/install-deno")
def test_deno_answers_what_the_table_says_for_every_probe():
    script = (f'import {{ callerErrorStatus }} from "{SQLSTATES_TS.as_uri()}";\n'
              f"console.log(JSON.stringify({json.dumps(PROBES)}.map((c) => callerErrorStatus(c) ?? 500)));")
    env = {**os.environ, "DENO_DIR": os.environ.get("DENO_DIR", str(REPO / ".deno-cache")),
           "DENO_NO_UPDATE_CHECK": "1"}
    result = subprocess.run([str(DENO), "eval", "--no-config", script], capture_output=True, text=True, env=env,
                            timeout=60, cwd=SQLSTATES_TS.parent)
    assert result.returncode == 0, result.stderr
    assert dict(zip(PROBES, json.loads(result.stdout), strict=True)) == {c: errors.http_status(c) for c in PROBES}


def test_every_sqlstate_the_sql_raises_is_a_documented_callers_mistake():
    raised = {code for path in (REPO / "sql").rglob("*.sql")
              for code in re.findall(r"errcode\s*=\s*'([0-9A-Z]{5})'", path.read_text())}
    assert raised  # the pattern still finds them
    by_code = {s.code: s for s in errors.SQLSTATES}
    for code in sorted(raised):
        assert code in by_code, f"{code} is raised in sql/ but has no row of its own in wf.errors"
        assert errors.bad_input(code), code


def test_every_sqlstate_readme_documents_has_its_own_row():
    documented = set(re.findall(r"^\| `([0-9A-Z]{5})` \|", (REPO / "README.md").read_text(), re.M))
    assert documented
    by_code = {s.code: s for s in errors.SQLSTATES}
    assert documented <= set(by_code), documented - set(by_code)
    assert all(errors.bad_input(code) for code in documented)


def test_one_rule_for_every_row():
    """A caller's mistake: CLI 2 and HTTP 4xx, never retried. Anything else: CLI 1 and HTTP 500."""
    for row in (*errors.SQLSTATES, errors.OTHER):
        callers_mistake = row.exit_code == errors.EXIT_BAD_INPUT
        assert callers_mistake == (400 <= row.http_status < 500), row
        assert callers_mistake or (row.exit_code, row.http_status) == (errors.EXIT_FAILURE, 500), row
        if callers_mistake:
            assert row.permanent, row
        assert re.fullmatch(r"[0-9A-Z]{2}|[0-9A-Z]{5}", row.code) or row is errors.OTHER, row
    assert not errors.OTHER.permanent
    assert len({s.code for s in errors.SQLSTATES}) == len(errors.SQLSTATES)


@pytest.mark.parametrize(("sqlstate", "permanent", "exit_code", "http_status"), [
    ("22023", True, 2, 400),   # wf's bad input
    ("22P05", True, 2, 400),   # U+0000 in jsonb: its class
    ("54000", True, 2, 400),
    ("54001", True, 1, 500),   # another program limit
    ("55000", True, 2, 400),
    ("55P03", False, 1, 500),  # lock timeout: goes away
    ("P0002", True, 2, 404),
    ("P0001", True, 1, 500),   # a raise without errcode
    ("23505", True, 1, 500),
    ("42501", True, 1, 500),   # a missing privilege
    ("42883", True, 1, 500),   # wf missing or older than this client
    ("40001", False, 1, 500),  # serialization failure
    ("08006", False, 1, 500),  # connection failure
    ("", False, 1, 500),
    (None, False, 1, 500),
])
def test_lookup(sqlstate, permanent, exit_code, http_status):
    assert (errors.permanent(sqlstate), errors.exit_code(sqlstate), errors.http_status(sqlstate)) == (
        permanent, exit_code, http_status)


def test_a_value_the_database_refuses_is_class_22():
    assert errors.refused_value("22P05") and errors.refused_value("22023")
    assert not errors.refused_value("23505") and not errors.refused_value(None)
