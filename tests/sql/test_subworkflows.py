"""workflow steps: a child run per attempt (wf.start_child), its end delivered through the internal
stage (wf.finish_child), retries as new children, cancel, wf.run_tree, nesting, define-time checks."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb
from wfsql import (
    claim,
    complete,
    counts,
    define,
    enqueue,
    event_kinds,
    fail,
    make_visible,
    messages,
    run_status,
    step_row,
    step_statuses,
)

DEFINITION_TABLES = ("wf.definitions", "wf.definition_steps", "wf.workflows")


def define_child(conn: psycopg.Connection, name: str = "child") -> None:
    """One echo call, max_retries 0: a failed call fails the child run at once."""
    define(conn, {"name": name, "steps": [{"name": "c1", "function": "echo", "action": "go", "max_retries": 0}]})


def define_parent(conn: psycopg.Connection, child: str = "child", name: str = "parent", **sub: Any) -> None:
    """sub (runs the child workflow) → after (an echo call)."""
    define(conn, {"name": name, "steps": [
        {"name": "sub", "workflow": child, "input_template": {"x": "{{ x }}"}, **sub},
        {"name": "after", "function": "echo", "action": "go"},
    ]})


def start_child(conn: psycopg.Connection, task: dict[str, Any], input: dict[str, Any] | None = None) -> str | None:
    row = conn.execute("select wf.start_child(%s, %s, %s, %s) as child",
                       (task["run_id"], task["step"], task["attempt"], Jsonb(input or {"x": 1}))).fetchone()
    return None if row["child"] is None else str(row["child"])


def run_row(conn: psycopg.Connection, run_id: str) -> dict[str, Any]:
    return conn.execute("select * from wf.runs where id = %s", (run_id,)).fetchone()


def parent_with_child(conn: psycopg.Connection, **sub: Any) -> tuple[str, str]:
    """A parent run whose sub step started its child: (parent run id, child run id)."""
    define_child(conn)
    define_parent(conn, **sub)
    parent = enqueue(conn, "parent", {"x": 1}, correlation_id="order-7")
    [task] = claim(conn, "_wf")
    child = start_child(conn, task)
    assert child is not None
    return parent, child


def finish_child_call(conn: psycopg.Connection, output: Any = None, error: str | None = None) -> None:
    """Answer the child's only call (c1), then deliver the child-done message to the parent."""
    [c1] = claim(conn, "echo")
    assert c1["step"] == "c1"
    if error is None:
        complete(conn, c1, output)
    else:
        fail(conn, c1, error, retryable=False)
    assert claim(conn, "_wf") == []  # wf.finish_child, nothing for a worker


# --- a child run per attempt ---------------------------------------------------------------------


def test_claim_returns_a_workflow_step_with_its_kind_and_input_template(conn: psycopg.Connection) -> None:
    define_child(conn)
    define_parent(conn)
    enqueue(conn, "parent", {"x": 1})
    [task] = claim(conn, "_wf")
    assert (task["step"], task["kind"], task["action"], task["payload_template"]) == (
        "sub", "workflow", "child", {"x": "{{ x }}"})


def test_workflow_step_starts_one_child_linked_to_its_parent(conn: psycopg.Connection) -> None:
    parent, child = parent_with_child(conn)
    row = run_row(conn, child)
    assert (row["workflow"], row["input"], str(row["parent_run_id"]), row["parent_step"], row["depth"]) == (
        "child", {"x": 1}, parent, "sub", 1)
    assert row["correlation_id"] == "order-7"
    assert conn.execute("select count(*) as n from wf.runs where parent_run_id = %s", (parent,)).fetchone()["n"] == 1


def test_waiting_workflow_step_holds_no_lease_and_no_message(conn: psycopg.Connection) -> None:
    parent, child = parent_with_child(conn)
    row = step_row(conn, parent, "sub")
    assert (row["status"], str(row["child_run_id"]), row["lease_until"]) == ("running", child, None)
    assert messages(conn, "_wf") == []
    assert ("child_started", 1) in event_kinds(conn, parent, "sub")


def test_runs_overview_shows_the_child_a_step_waits_for(conn: psycopg.Connection) -> None:
    parent, child = parent_with_child(conn)
    rows = {str(r["run_id"]): r for r in conn.execute("select * from wf.runs_overview").fetchall()}
    assert rows[parent]["current_steps"] == f"sub: waiting for child run {child}"
    assert str(rows[child]["parent_run_id"]) == parent


def test_child_output_becomes_the_step_output_when_the_child_completes(conn: psycopg.Connection) -> None:
    parent, child = parent_with_child(conn)
    finish_child_call(conn, {"id": 7})
    assert run_status(conn, child) == "completed"
    assert run_row(conn, child)["output"] == {"c1": {"id": 7}}
    sub = step_row(conn, parent, "sub")
    assert (sub["status"], sub["output"]) == ("succeeded", {"c1": {"id": 7}})
    [after] = claim(conn, "echo")
    assert after["step"] == "after"
    assert after["context"]["steps"]["sub"]["output"] == {"c1": {"id": 7}}


def test_parent_step_waits_until_the_child_done_message_is_claimed(conn: psycopg.Connection) -> None:
    parent, child = parent_with_child(conn)
    [c1] = claim(conn, "echo")
    complete(conn, c1, {"id": 7})
    assert run_status(conn, child) == "completed"
    assert step_row(conn, parent, "sub")["status"] == "running"
    [done] = messages(conn, "_wf")
    assert done["message"] == {"run_id": parent, "step": "sub", "child": child}


def test_start_child_twice_for_the_same_attempt_returns_the_same_child(conn: psycopg.Connection) -> None:
    parent, child = parent_with_child(conn)
    task = {"run_id": parent, "step": "sub", "attempt": 1}
    assert start_child(conn, task) == child
    assert conn.execute("select count(*) as n from wf.runs where workflow = 'child'").fetchone()["n"] == 1
    assert [k for k, _ in event_kinds(conn, parent, "sub")].count("child_started") == 1
    assert str(step_row(conn, parent, "sub")["child_run_id"]) == child


def test_start_child_for_a_stale_attempt_returns_null_and_starts_nothing(conn: psycopg.Connection) -> None:
    parent, _ = parent_with_child(conn)
    assert start_child(conn, {"run_id": parent, "step": "sub", "attempt": 2}) is None
    assert conn.execute("select count(*) as n from wf.runs where workflow = 'child'").fetchone()["n"] == 1


def test_failing_child_fails_the_parent_step_naming_the_child(conn: psycopg.Connection) -> None:
    parent, child = parent_with_child(conn, max_retries=0)
    finish_child_call(conn, error="card declined")
    assert run_status(conn, child) == "failed"
    sub = step_row(conn, parent, "sub")
    assert sub["status"] == "dead"
    assert sub["error"] == f"child run {child} (child) failed: card declined"
    assert run_status(conn, parent) == "failed"


def test_failing_child_is_retried_as_a_new_child(conn: psycopg.Connection) -> None:
    parent, first = parent_with_child(conn)
    finish_child_call(conn, error="card declined")
    sub = step_row(conn, parent, "sub")
    assert (sub["status"], sub["attempt"], sub["child_run_id"]) == ("retrying", 1, None)
    make_visible(conn, "_wf")  # the backoff has passed
    [task] = claim(conn, "_wf")
    assert (task["step"], task["attempt"]) == ("sub", 2)
    second = start_child(conn, task)
    assert second is not None and second != first
    assert str(run_row(conn, second)["parent_run_id"]) == parent
    finish_child_call(conn, {"id": 8})
    assert step_row(conn, parent, "sub")["output"] == {"c1": {"id": 8}}


def test_old_childs_late_end_does_not_touch_the_retry(conn: psycopg.Connection) -> None:
    parent, first = parent_with_child(conn)
    finish_child_call(conn, error="card declined")
    make_visible(conn, "_wf")
    [task] = claim(conn, "_wf")
    second = start_child(conn, task)
    assert conn.execute("select wf.finish_child(%s, 'sub', %s) as ok", (parent, first)).fetchone()["ok"] is False
    sub = step_row(conn, parent, "sub")
    assert (sub["status"], str(sub["child_run_id"])) == ("running", second)


def test_cancelled_child_fails_the_parent_step(conn: psycopg.Connection) -> None:
    parent, child = parent_with_child(conn, max_retries=0)
    conn.execute("select wf.cancel(%s, 'no longer needed')", (child,))
    assert claim(conn, "_wf") == []
    sub = step_row(conn, parent, "sub")
    assert (sub["status"], sub["error"]) == ("dead", f"child run {child} (child) cancelled: no longer needed")


def test_cancelling_the_parent_cancels_its_running_child(conn: psycopg.Connection) -> None:
    parent, child = parent_with_child(conn)
    assert conn.execute("select wf.cancel(%s) as ok", (parent,)).fetchone()["ok"]
    assert run_status(conn, parent) == "cancelled"
    assert run_status(conn, child) == "cancelled"
    assert run_row(conn, child)["error"] == f"parent run {parent} was cancelled"
    assert step_statuses(conn, child) == {"c1": "cancelled"}
    assert claim(conn, "echo") == []
    assert claim(conn, "_wf") == []  # the child's end reaches a step that no longer waits
    assert step_row(conn, parent, "sub")["status"] == "cancelled"


def test_cancelling_the_parent_leaves_a_finished_child_alone(conn: psycopg.Connection) -> None:
    parent, child = parent_with_child(conn)
    [c1] = claim(conn, "echo")
    complete(conn, c1, {"id": 7})  # the child completed; its message not yet delivered
    conn.execute("select wf.cancel(%s)", (parent,))
    assert run_status(conn, child) == "completed"
    assert claim(conn, "_wf") == []
    assert step_row(conn, parent, "sub")["status"] == "cancelled"


# --- the tree ------------------------------------------------------------------------------------


def test_run_tree_lists_the_run_and_its_descendants_with_depths(conn: psycopg.Connection) -> None:
    define_child(conn, "leaf")
    define(conn, {"name": "mid", "steps": [{"name": "m", "workflow": "leaf"}]})
    define(conn, {"name": "top", "steps": [{"name": "t", "workflow": "mid"}]})
    top = enqueue(conn, "top")
    [t] = claim(conn, "_wf")
    mid = start_child(conn, t, {})
    [m] = claim(conn, "_wf")
    leaf = start_child(conn, m, {})
    tree = conn.execute("select * from wf.run_tree(%s)", (top,)).fetchall()
    assert [(str(r["run_id"]), r["workflow"], r["depth"], r["parent_step"], r["status"]) for r in tree] == [
        (top, "top", 0, None, "running"), (mid, "mid", 1, "t", "running"), (leaf, "leaf", 2, "m", "pending")]
    assert [str(r["parent_run_id"]) if r["parent_run_id"] else None for r in tree] == [None, top, mid]
    below = conn.execute("select run_id, depth from wf.run_tree(%s)", (mid,)).fetchall()
    assert [(str(r["run_id"]), r["depth"]) for r in below] == [(mid, 0), (leaf, 1)]
    assert run_row(conn, leaf)["depth"] == 2


def test_run_tree_of_a_run_without_children_is_the_run(conn: psycopg.Connection) -> None:
    define_child(conn)
    run_id = enqueue(conn, "child")
    tree = conn.execute("select run_id, depth from wf.run_tree(%s)", (run_id,)).fetchall()
    assert [(str(r["run_id"]), r["depth"]) for r in tree] == [(run_id, 0)]


# --- nesting limit -------------------------------------------------------------------------------


def test_nesting_past_10_fails_the_step_with_a_clear_error(conn: psycopg.Connection) -> None:
    define_child(conn)
    define_parent(conn, max_retries=3)
    parent = enqueue(conn, "parent", {"x": 1})
    conn.execute("update wf.runs set depth = 10 where id = %s", (parent,))
    [task] = claim(conn, "_wf")
    assert start_child(conn, task) is None
    sub = step_row(conn, parent, "sub")
    assert sub["status"] == "dead"  # not retried: it would not help
    assert sub["error"] == "workflow child would be nested 11 levels deep; at most 10 are allowed"
    assert run_status(conn, parent) == "failed"
    assert conn.execute("select count(*) as n from wf.runs where workflow = 'child'").fetchone()["n"] == 0


def test_nesting_of_10_is_allowed(conn: psycopg.Connection) -> None:
    define_child(conn)
    define_parent(conn)
    parent = enqueue(conn, "parent", {"x": 1})
    conn.execute("update wf.runs set depth = 9 where id = %s", (parent,))
    [task] = claim(conn, "_wf")
    child = start_child(conn, task)
    assert child is not None and run_row(conn, child)["depth"] == 10


def test_child_that_cannot_start_fails_the_step_without_retry(conn: psycopg.Connection) -> None:
    define_child(conn)
    define_parent(conn, max_retries=3)
    parent = enqueue(conn, "parent", {"x": 1})
    conn.execute("select wf.deactivate('child')")
    [task] = claim(conn, "_wf")
    assert start_child(conn, task) is None
    sub = step_row(conn, parent, "sub")
    assert sub["status"] == "dead"
    assert sub["error"].startswith("child workflow child did not start: workflow child is inactive")


def test_child_refusing_its_input_fails_the_step_without_retry(conn: psycopg.Connection) -> None:
    define(conn, {"name": "child", "required_fields": ["email"],
                  "steps": [{"name": "c1", "function": "echo", "action": "go"}]})
    define_parent(conn, max_retries=3)
    parent = enqueue(conn, "parent", {"x": 1})
    [task] = claim(conn, "_wf")
    assert start_child(conn, task, {"x": 1}) is None
    sub = step_row(conn, parent, "sub")
    assert (sub["status"], sub["error"]) == (
        "dead", "child workflow child did not start: workflow child: input is missing required field(s) email")
    assert conn.execute("select count(*) as n from wf.runs where workflow = 'child'").fetchone()["n"] == 0


# --- define-time checks --------------------------------------------------------------------------


def test_define_refuses_a_workflow_step_naming_an_unknown_workflow(conn: psycopg.Connection) -> None:
    with pytest.raises(errors.InvalidParameterValue,
                       match="workflow parent: step sub: workflow nope is not defined"):
        define_parent(conn, child="nope")
    assert counts(conn, *DEFINITION_TABLES) == dict.fromkeys(DEFINITION_TABLES, 0)


def test_define_refuses_a_workflow_running_itself(conn: psycopg.Connection) -> None:
    with pytest.raises(errors.InvalidParameterValue,
                       match="workflow parent: step sub: a workflow cannot run itself as a step"):
        define_parent(conn, child="parent")
    assert counts(conn, *DEFINITION_TABLES) == dict.fromkeys(DEFINITION_TABLES, 0)


def test_define_refuses_a_cycle_of_workflows_naming_it(conn: psycopg.Connection) -> None:
    define_child(conn, "b")
    define(conn, {"name": "a", "steps": [{"name": "call_b", "workflow": "b"}]})
    before = counts(conn, *DEFINITION_TABLES)
    with pytest.raises(errors.InvalidParameterValue,
                       match="workflow b: step call_a: workflows would run each other in a cycle: b → a → b"):
        define(conn, {"name": "b", "steps": [{"name": "call_a", "workflow": "a"}]})
    assert counts(conn, *DEFINITION_TABLES) == before
    assert conn.execute("select current_version from wf.workflows where name = 'b'").fetchone()["current_version"] == 1


def test_define_refuses_a_longer_cycle_of_workflows(conn: psycopg.Connection) -> None:
    define_child(conn, "c")
    define(conn, {"name": "b", "steps": [{"name": "call_c", "workflow": "c"}]})
    define(conn, {"name": "a", "steps": [{"name": "call_b", "workflow": "b"}]})
    with pytest.raises(errors.InvalidParameterValue, match="cycle: c → a → b → c"):
        define(conn, {"name": "c", "steps": [{"name": "call_a", "workflow": "a"}]})


def test_define_accepts_the_same_child_twice_without_a_cycle(conn: psycopg.Connection) -> None:
    define_child(conn, "leaf")
    define(conn, {"name": "b", "steps": [{"name": "l", "workflow": "leaf"}]})
    diamond_of_workflows = {"name": "a", "steps": [{"name": "l", "workflow": "leaf"}, {"name": "b", "workflow": "b"}]}
    assert define(conn, diamond_of_workflows) == 1
