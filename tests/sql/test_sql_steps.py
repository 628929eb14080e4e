"""sql steps: wf.allow_sql_step / wf.disallow_sql_step, wf.define's check, and wf.complete_sql —
the registered function runs in the transaction that records the step's success; its exceptions
are step failures (classes 22 and 23 not retried)."""

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
    run_status,
    step_row,
)

DEFINITION_TABLES = ("wf.definitions", "wf.definition_steps", "wf.workflows")

# mark_done records an id (a primary key: the same id twice is a unique violation, class 23);
# {"raise": "<sqlstate>"} makes it raise that SQLSTATE after its insert
MARK_DONE = """
create table public.done (id int primary key, note text);
create function public.mark_done(args jsonb) returns jsonb language plpgsql as $$
begin
  insert into public.done (id, note) values ((args ->> 'id')::int, args ->> 'note');
  if args ? 'raise' then
    raise exception 'asked to fail' using errcode = args ->> 'raise';
  end if;
  return jsonb_build_object('done', (args ->> 'id')::int);
end;
$$;
"""


@pytest.fixture
def allowed(conn: psycopg.Connection) -> psycopg.Connection:
    """conn with public.mark_done allowed as a sql step."""
    conn.execute(MARK_DONE)
    conn.execute("select wf.allow_sql_step('public.mark_done(jsonb)')")
    return conn


def define_sql_workflow(conn: psycopg.Connection, **step: Any) -> None:
    """mark (sql step public.mark_done) → after (an echo call)."""
    define(conn, {"name": "marking", "steps": [
        {"name": "mark", "sql": "public.mark_done", "args_template": {"id": "{{ id }}"}, **step},
        {"name": "after", "function": "echo", "action": "go"},
    ]})


def claimed_sql_step(conn: psycopg.Connection, **step: Any) -> dict[str, Any]:
    define_sql_workflow(conn, **step)
    enqueue(conn, "marking", {"id": 1})
    [task] = claim(conn, "_wf")
    return task


def complete_sql(conn: psycopg.Connection, task: dict[str, Any], args: dict[str, Any]) -> bool:
    return conn.execute("select wf.complete_sql(%s, %s, %s, %s) as ok",
                        (task["run_id"], task["step"], task["attempt"], Jsonb(args))).fetchone()["ok"]


def done_ids(conn: psycopg.Connection) -> list[int]:
    return [r["id"] for r in conn.execute("select id from public.done order by id").fetchall()]


# --- allowing a function -------------------------------------------------------------------------


def test_allow_sql_step_registers_a_jsonb_function_under_its_name(conn: psycopg.Connection) -> None:
    conn.execute(MARK_DONE)
    name = conn.execute("select wf.allow_sql_step('public.mark_done(jsonb)') as n").fetchone()["n"]
    assert name == "public.mark_done"
    rows = conn.execute(
        "select fn = 'public.mark_done(jsonb)'::regprocedure as same, name from wf.sql_steps").fetchall()
    assert rows == [{"same": True, "name": "public.mark_done"}]


def test_allow_sql_step_twice_keeps_one_registration(conn: psycopg.Connection) -> None:
    conn.execute(MARK_DONE)
    conn.execute("select wf.allow_sql_step('public.mark_done(jsonb)')")
    conn.execute("select wf.allow_sql_step('public.mark_done(jsonb)')")
    assert counts(conn, "wf.sql_steps") == {"wf.sql_steps": 1}


@pytest.mark.parametrize("create", [
    "create function public.f(args int) returns jsonb language sql as $$ select '{}'::jsonb $$",
    "create function public.f(args jsonb) returns text language sql as $$ select 'x' $$",
    "create function public.f(args jsonb) returns setof jsonb language sql as $$ select '{}'::jsonb $$",
    "create function public.f(args jsonb, more jsonb) returns jsonb language sql as $$ select '{}'::jsonb $$",
    "create function public.f(args json) returns jsonb language sql as $$ select '{}'::jsonb $$",
    "create procedure public.f(args jsonb) language sql as $$ select 1 $$",
], ids=["int_argument", "text_result", "setof", "two_arguments", "json_argument", "procedure"])
def test_allow_sql_step_refuses_a_wrong_signature(conn: psycopg.Connection, create: str) -> None:
    conn.execute(create)
    fn = conn.execute("select oid::regprocedure::text as fn from pg_proc where proname = 'f'").fetchone()["fn"]
    with pytest.raises(errors.InvalidParameterValue,
                       match=r"cannot be a sql step: it must be a function \(args jsonb\) returns jsonb"):
        conn.execute("select wf.allow_sql_step(%s::regprocedure)", (fn,))
    assert counts(conn, "wf.sql_steps") == {"wf.sql_steps": 0}


def test_allow_sql_step_refuses_null(conn: psycopg.Connection) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="fn must name a function"):
        conn.execute("select wf.allow_sql_step(null)")


# --- define --------------------------------------------------------------------------------------


def test_define_refuses_a_sql_step_naming_an_unregistered_function(conn: psycopg.Connection) -> None:
    conn.execute(MARK_DONE)
    with pytest.raises(errors.InvalidParameterValue,
                       match=r"workflow marking: step mark: sql function public.mark_done is not allowed as a step "
                             r"\(an admin allows it with select wf.allow_sql_step\('public.mark_done\(jsonb\)'\)\)"):
        define_sql_workflow(conn)
    assert counts(conn, *DEFINITION_TABLES) == dict.fromkeys(DEFINITION_TABLES, 0)


def test_define_refuses_a_function_no_longer_allowed(allowed: psycopg.Connection) -> None:
    allowed.execute("select wf.disallow_sql_step('public.mark_done(jsonb)')")
    with pytest.raises(errors.InvalidParameterValue, match=r"sql function public\.mark_done is not allowed"):
        define_sql_workflow(allowed)


def test_claim_returns_a_sql_step_with_its_kind_and_args_template(allowed: psycopg.Connection) -> None:
    task = claimed_sql_step(allowed)
    assert (task["step"], task["kind"], task["action"], task["payload_template"]) == (
        "mark", "sql", "public.mark_done", {"id": "{{ id }}"})


# --- complete_sql --------------------------------------------------------------------------------


def test_complete_sql_succeeds_the_step_with_the_functions_result(allowed: psycopg.Connection) -> None:
    task = claimed_sql_step(allowed)
    assert complete_sql(allowed, task, {"id": 1, "note": "hi"})
    row = step_row(allowed, task["run_id"], "mark")
    assert (row["status"], row["output"]) == ("succeeded", {"done": 1})
    assert allowed.execute("select id, note from public.done").fetchall() == [{"id": 1, "note": "hi"}]
    [after] = claim(allowed, "echo")
    assert after["context"]["steps"]["mark"]["output"] == {"done": 1}
    complete(allowed, after)
    assert run_status(allowed, task["run_id"]) == "completed"


def test_function_effect_and_step_success_commit_together(allowed: psycopg.Connection) -> None:
    task = claimed_sql_step(allowed)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), allowed.transaction():
        assert complete_sql(allowed, task, {"id": 1})
        raise Abort  # the worker died before its commit
    assert done_ids(allowed) == []
    assert step_row(allowed, task["run_id"], "mark")["status"] == "running"
    assert complete_sql(allowed, task, {"id": 1})  # the same attempt may answer again
    assert done_ids(allowed) == [1]


@pytest.mark.parametrize(("sqlstate", "kind"), [("23505", "unique violation"), ("22012", "division by zero")])
def test_data_and_constraint_errors_fail_the_step_without_retry(allowed: psycopg.Connection, sqlstate: str,
                                                               kind: str) -> None:
    task = claimed_sql_step(allowed, max_retries=3)
    assert complete_sql(allowed, task, {"id": 1, "raise": sqlstate})
    row = step_row(allowed, task["run_id"], "mark")
    assert row["status"] == "dead"
    assert row["error"] == f"sql step public.mark_done failed: asked to fail (SQLSTATE {sqlstate})"
    assert run_status(allowed, task["run_id"]) == "failed"
    assert done_ids(allowed) == []  # the function's insert was rolled back


def test_a_real_unique_violation_fails_without_retry(allowed: psycopg.Connection) -> None:
    allowed.execute("insert into public.done (id) values (1)")
    task = claimed_sql_step(allowed, max_retries=3)
    assert complete_sql(allowed, task, {"id": 1})
    row = step_row(allowed, task["run_id"], "mark")
    assert row["status"] == "dead"
    assert row["error"].startswith("sql step public.mark_done failed: duplicate key value violates unique constraint")
    assert row["error"].endswith("(SQLSTATE 23505)")


@pytest.mark.parametrize("sqlstate", ["40001", "40P01", "P0001", "55P03"])
def test_other_errors_are_retried(allowed: psycopg.Connection, sqlstate: str) -> None:
    task = claimed_sql_step(allowed, max_retries=3)
    assert complete_sql(allowed, task, {"id": 1, "raise": sqlstate})
    row = step_row(allowed, task["run_id"], "mark")
    assert (row["status"], row["error"]) == (
        "retrying", f"sql step public.mark_done failed: asked to fail (SQLSTATE {sqlstate})")
    assert done_ids(allowed) == []
    assert [k for k, _ in event_kinds(allowed, task["run_id"], "mark")] == ["started", "retrying"]


def test_retryable_error_on_the_last_attempt_fails_the_step(allowed: psycopg.Connection) -> None:
    task = claimed_sql_step(allowed, max_retries=0)
    assert complete_sql(allowed, task, {"id": 1, "raise": "40001"})
    assert step_row(allowed, task["run_id"], "mark")["status"] == "dead"


def test_stale_attempt_returns_false_and_does_not_call_the_function(allowed: psycopg.Connection) -> None:
    task = claimed_sql_step(allowed)
    assert complete_sql(allowed, {**task, "attempt": task["attempt"] + 1}, {"id": 1}) is False
    assert done_ids(allowed) == []
    assert step_row(allowed, task["run_id"], "mark")["status"] == "running"
    assert ("stale_answer", task["attempt"] + 1) in event_kinds(allowed, task["run_id"], "mark")


def test_answer_after_success_does_not_call_the_function_again(allowed: psycopg.Connection) -> None:
    task = claimed_sql_step(allowed)
    complete_sql(allowed, task, {"id": 1})
    assert complete_sql(allowed, task, {"id": 2}) is False
    assert done_ids(allowed) == [1]


# --- disallow ------------------------------------------------------------------------------------


def test_disallow_sql_step_returns_whether_it_was_allowed(allowed: psycopg.Connection) -> None:
    assert allowed.execute("select wf.disallow_sql_step('public.mark_done(jsonb)') as ok").fetchone()["ok"]
    assert allowed.execute("select wf.disallow_sql_step('public.mark_done(jsonb)') as ok").fetchone()["ok"] is False
    assert counts(allowed, "wf.sql_steps") == {"wf.sql_steps": 0}


def test_claimed_sql_step_fails_without_retry_after_disallow(allowed: psycopg.Connection) -> None:
    task = claimed_sql_step(allowed, max_retries=3)
    allowed.execute("select wf.disallow_sql_step('public.mark_done(jsonb)')")
    assert complete_sql(allowed, task, {"id": 1})
    row = step_row(allowed, task["run_id"], "mark")
    assert (row["status"], row["error"]) == (
        "dead", "sql function public.mark_done is no longer allowed as a step (wf.allow_sql_step)")
    assert done_ids(allowed) == []
