"""Steps that wait without a call in flight — for a signal, for a child run — stop with their run: when a
sibling step dies and the run fails, they are cancelled (no step stays `running` in a failed run forever),
and a child run nobody waits for any more is cancelled too."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from wfsql import claim, define, enqueue, fail, run_status, step_row


def fan_out(conn: psycopg.Connection, waiting: dict[str, Any]) -> str:
    """`waiting` and a doomed echo call start together; the call fails for good."""
    define(conn, {"name": "fan", "steps": [
        {"name": "waits", "depends_on": [], **waiting},
        {"name": "doomed", "function": "echo", "action": "go", "max_retries": 0, "depends_on": []}]})
    return enqueue(conn, "fan", {"x": 1})


def test_a_step_waiting_for_a_signal_is_cancelled_when_its_run_fails(conn):
    run_id = fan_out(conn, {"wait_for": {"signal": "approved", "timeout_seconds": 3600}})
    assert claim(conn, "_wf") == []  # the wait starts
    assert step_row(conn, run_id, "waits")["status"] == "running"
    [call] = claim(conn, "echo")
    fail(conn, call, "gone for good", retryable=False)
    assert run_status(conn, run_id) == "failed"
    waits = step_row(conn, run_id, "waits")
    assert (waits["status"], waits["wake_at"]) == ("cancelled", None)
    assert not conn.execute("select wf.signal(%s, 'approved') as ok", (run_id,)).fetchone()["ok"]


def test_a_child_run_is_cancelled_when_its_parent_run_fails(conn):
    define(conn, {"name": "child", "steps": [{"name": "c1", "function": "echo", "action": "go"}]})
    run_id = fan_out(conn, {"workflow": "child", "input_template": {}})
    [task] = claim(conn, "_wf")
    child = conn.execute("select wf.start_child(%s, %s, %s, %s) as id",
                         (task["run_id"], task["step"], task["attempt"], Jsonb({}))).fetchone()["id"]
    doomed = next(t for t in claim(conn, "echo") if str(t["run_id"]) == run_id)
    fail(conn, doomed, "gone for good", retryable=False)

    assert run_status(conn, run_id) == "failed"
    assert step_row(conn, run_id, "waits")["status"] == "cancelled"
    assert run_status(conn, str(child)) == "cancelled"
    error = conn.execute("select error from wf.runs where id = %s", (child,)).fetchone()["error"]
    assert error == f"parent run {run_id} failed"
    assert claim(conn, "_wf") == []  # the child's end reaches a step that no longer waits
    assert step_row(conn, run_id, "waits")["status"] == "cancelled"
