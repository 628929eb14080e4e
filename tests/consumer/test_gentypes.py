"""`wf gen-types` (README, Command line): the generated TypeScript passes `deno check` when used
right and fails it for a wrong field type or an unknown workflow; the generated Python passes
`mypy --strict` and fails it the same way."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from wfproc import REPO, WF
from wfsql import chain, define

DENO = REPO / "node_modules/.bin/deno"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def wf(*args: str, dsn: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WF_") and k != "DATABASE_URL"}
    return subprocess.run([str(WF), *args], cwd=REPO, env={**base, "WF_DATABASE_URL": dsn, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout

SIGNUP = {
    "name": "user-signup",
    "input_schema": {
        "type": "object", "required": ["user_id", "email", "address"], "additionalProperties": False,
        "properties": {
            "user_id": {"type": "string", "format": "uuid"},
            "email": {"type": "string", "format": "email"},
            "plan": {"enum": ["free", "pro"]},
            "age": {"type": "integer", "minimum": 0},
            "address": {"type": "object", "required": ["city"],
                        "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}}},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    },
    "steps": [{"name": "welcome", "function": "send-email", "action": "send",
               "payload_template": {"to": "{{ email }}", "user": "{{ user_id }}"}}],
}
ORDER = {
    "name": "order-placed",
    "required_fields": ["order_id"],
    "steps": [{"name": "confirm", "function": "send-email", "action": "send",
               "payload_template": {"order": "{{ order_id }}", "to": "{{ customer_email }}"}}],
}


@pytest.fixture
def defined(conn: psycopg.Connection) -> None:
    define(conn, SIGNUP)
    define(conn, ORDER)
    define(conn, chain("retired"))
    conn.execute("select wf.deactivate('retired')")


def generate(db: str, lang: str, out: Path) -> str:
    result = wf("gen-types", "--lang", lang, "--out", str(out), dsn=db)
    ok(result)
    assert "2 active workflow(s)" in result.stderr
    return out.read_text()


# ---- TypeScript ------------------------------------------------------------------------------------


def deno_check(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DENO_DIR": os.environ.get("DENO_DIR", str(REPO / ".deno-cache")),
           "DENO_NO_UPDATE_CHECK": "1", "NO_COLOR": "1"}
    result = subprocess.run([str(DENO), "check", "--no-config", path.name], cwd=path.parent, env=env,
                            capture_output=True, text=True, timeout=120)
    result.stderr = ANSI.sub("", result.stderr)
    return result


TS_OK = """\
import { start, startRpc, type WorkflowInputs, type WorkflowName } from "./workflows.ts";

const signup: WorkflowInputs["user-signup"] = {
  user_id: "0193f1a2-0000-7000-8000-000000000000", email: "ana@example.com",
  address: { city: "Lisbon", zip: null }, plan: "pro", tags: ["a"],
};
export async function go(token: string): Promise<string> {
  const run = await start("http://127.0.0.1:54321/functions/v1", token, "user-signup", signup,
    { idempotency_key: "k1", correlation_id: "c1" });
  const name: "user-signup" = run.workflow;
  // no schema: the required field and the template variable, any type; other fields allowed
  await start("http://x", token, "order-placed", { order_id: 7, customer_email: "b@example.com", note: "x" });
  const client = {
    rpc: (_fn: string, _args: Record<string, unknown>) => Promise.resolve({ data: "id" as unknown, error: null }),
  };
  const id = await startRpc(client, "order-placed", { order_id: "o1", customer_email: "c@example.com" });
  const names: WorkflowName[] = ["user-signup", "order-placed"];
  return name + id + names.length + run.run_id + run.status + run.created_at;
}
"""


@pytest.mark.skipif(not DENO.exists(), reason="Deno is installed by scripts/install-deno")
def test_typescript_types_check_a_right_call_and_reject_a_wrong_field_or_workflow(db: str, defined: None,
                                                                                  tmp_path: Path) -> None:
    text = generate(db, "ts", tmp_path / "workflows.ts")
    assert '"user-signup": {' in text and '"order-placed": {' in text and '"retired"' not in text
    assert '"plan"?: "free" | "pro";' in text and '"zip"?: string | null;' in text
    assert "export type WorkflowName = keyof WorkflowInputs;" in text
    assert "/workflows/start" in text and 'client.rpc("enqueue", args)' in text

    (tmp_path / "ok.ts").write_text(TS_OK)
    result = deno_check(tmp_path / "ok.ts")
    assert result.returncode == 0, result.stderr

    (tmp_path / "field.ts").write_text(
        'import { start } from "./workflows.ts";\n'
        'await start("http://x", "t", "user-signup", {user_id: "u", email: "e", address: {city: 7}});\n')
    result = deno_check(tmp_path / "field.ts")
    assert result.returncode != 0
    assert "Type 'number' is not assignable to type 'string'" in result.stderr, result.stderr
    assert "city" in result.stderr

    (tmp_path / "enum.ts").write_text(
        'import { startRpc } from "./workflows.ts";\n'
        'declare const c: { rpc(fn: string, args: Record<string, unknown>): '
        'PromiseLike<{ data: unknown; error: unknown }> };\n'
        'await startRpc(c, "user-signup", {user_id: "u", email: "e", address: {city: "x"}, plan: "gold"});\n')
    result = deno_check(tmp_path / "enum.ts")
    assert result.returncode != 0
    assert """Type '"gold"' is not assignable to type '"free" | "pro" | undefined'""" in result.stderr, result.stderr

    (tmp_path / "name.ts").write_text(
        'import { start } from "./workflows.ts";\n'
        'await start("http://x", "t", "user-signin", {user_id: "u"});\n')
    result = deno_check(tmp_path / "name.ts")
    assert result.returncode != 0
    assert """Argument of type '"user-signin"' is not assignable""" in result.stderr, result.stderr

    (tmp_path / "missing.ts").write_text(
        'import { start } from "./workflows.ts";\n'
        'await start("http://x", "t", "order-placed", {order_id: 1});\n')
    result = deno_check(tmp_path / "missing.ts")
    assert result.returncode != 0
    assert "customer_email" in result.stderr, result.stderr


# ---- Python ----------------------------------------------------------------------------------------


def mypy(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--no-error-summary",
                           "--hide-error-context", path.name], cwd=path.parent, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "MYPYPATH": str(path.parent)})


PY_OK = """\
from __future__ import annotations

from wf_inputs import StartResult, UserSignupInput, start


def go(token: str) -> str:
    signup: UserSignupInput = {"user_id": "u", "email": "ana@example.com", "address": {"city": "Lisbon", "zip": None},
                               "plan": "pro"}
    run: StartResult = start("http://x/functions/v1", token, "user-signup", signup, idempotency_key="k")
    start("http://x", token, "order-placed", {"order_id": 7, "customer_email": "b@example.com"})
    return run["run_id"]
"""


def test_python_types_check_a_right_call_and_reject_a_wrong_field_or_workflow(db: str, defined: None,
                                                                              tmp_path: Path) -> None:
    text = generate(db, "py", tmp_path / "wf_inputs.py")
    assert "class UserSignupInput(TypedDict):" in text and "plan: NotRequired[Literal['free', 'pro']]" in text
    assert "class UserSignupInputAddress(TypedDict):" in text and "retired" not in text
    assert "import urllib.request" in text and "@overload" in text

    (tmp_path / "ok_use.py").write_text(PY_OK)
    result = mypy(tmp_path / "ok_use.py")
    assert result.returncode == 0, result.stdout + result.stderr
    result = mypy(tmp_path / "wf_inputs.py")
    assert result.returncode == 0, result.stdout + result.stderr
    # the module imports with the standard library only
    subprocess.run([sys.executable, "-c", "import wf_inputs"], cwd=tmp_path, check=True, timeout=30)

    (tmp_path / "field_use.py").write_text(
        "from wf_inputs import UserSignupInput, start\n"
        'start("http://x", "t", "user-signup", {"user_id": "u", "email": "e", "address": {"city": 7}})\n'
        'signup: UserSignupInput = {"user_id": "u", "email": "e", "address": {"city": 7}}\n')
    result = mypy(tmp_path / "field_use.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'field_use.py:2: error: No overload variant of "start" matches' in result.stdout, result.stdout
    assert 'field_use.py:3: error: Incompatible types (expression has type "int", TypedDict item "city" has type ' \
           '"str")' in result.stdout, result.stdout

    (tmp_path / "name_use.py").write_text(
        "from wf_inputs import start\n"
        'start("http://x", "t", "user-signin", {"user_id": "u"})\n')
    result = mypy(tmp_path / "name_use.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'No overload variant of "start" matches argument types' in result.stdout, result.stdout
    # the error lists the workflows there are
    assert "workflow: Literal['user-signup']" in result.stdout, result.stdout
    assert "workflow: Literal['order-placed']" in result.stdout, result.stdout


def test_stdout_without_out_and_a_workflow_without_inputs(conn: psycopg.Connection, db: str) -> None:
    define(conn, chain("plain"))
    text = ok(wf("gen-types", "--lang", "ts", dsn=db))
    assert '"plain": {\n    [field: string]: unknown;\n  };' in text
    text = ok(wf("gen-types", env={"WF_GEN_TYPES_LANG": "py"}, dsn=db))
    assert "PlainInput = TypedDict('PlainInput', {})" in text or "class PlainInput" in text
