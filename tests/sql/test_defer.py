"""not_before: wf.defer gives a claimed attempt back until its time (no attempt used); and what
wf.define refuses in the keys of part 2 (wait_for, not_before / offset_seconds, keys of a kind)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import errors
from wfsql import (
    claim,
    complete,
    counts,
    define,
    enqueue,
    event_kinds,
    events,
    make_visible,
    messages,
    run_status,
    step_row,
)

DEFINITION_TABLES = ("wf.definitions", "wf.definition_steps", "wf.workflows")


def reminder(conn: psycopg.Connection, **step: Any) -> str:
    """One echo call `remind` that starts not before 24 h before the meeting; started."""
    define(conn, {"name": "reminder", "steps": [
        {"name": "remind", "function": "echo", "action": "go", "not_before": "{{ meeting_at }}",
         "offset_seconds": -86400, **step},
    ]})
    return enqueue(conn, "reminder", {"meeting_at": "2030-01-02T09:00:00Z"})


def defer(conn: psycopg.Connection, task: dict[str, Any], until: datetime | None) -> bool:
    return conn.execute("select wf.defer(%s, %s, %s, %s) as ok",
                        (task["run_id"], task["step"], task["attempt"], until)).fetchone()["ok"]


def in_an_hour() -> datetime:
    return (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)


# --- what the worker gets --------------------------------------------------------------------------


def test_claim_returns_the_not_before_template_and_offset(conn: psycopg.Connection) -> None:
    reminder(conn)
    [task] = claim(conn, "echo")
    assert (task["kind"], task["not_before"], task["offset_seconds"]) == ("function", "{{ meeting_at }}", -86400)


def test_step_without_not_before_gets_none_and_no_offset(conn: psycopg.Connection) -> None:
    define(conn, {"name": "plain", "steps": [{"name": "a", "function": "echo", "action": "go"}]})
    enqueue(conn, "plain")
    [task] = claim(conn, "echo")
    assert (task["not_before"], task["offset_seconds"]) == (None, 0)


def test_not_before_variables_are_required_input(conn: psycopg.Connection) -> None:
    reminder(conn)
    row = conn.execute("select input_vars from wf.definitions where workflow = 'reminder'").fetchone()
    assert row["input_vars"] == ["meeting_at"]
    with pytest.raises(errors.InvalidParameterValue, match=r"input is missing variable\(s\) meeting_at"):
        enqueue(conn, "reminder", {})


# --- defer to a time ahead ---------------------------------------------------------------------------


def test_defer_gives_the_attempt_back(conn: psycopg.Connection) -> None:
    run_id = reminder(conn)
    [task] = claim(conn, "echo")
    assert defer(conn, task, in_an_hour())
    row = step_row(conn, run_id, "remind")
    assert (row["status"], row["attempt"], row["started_at"], row["lease_until"]) == ("queued", 0, None, None)


def test_defer_moves_the_message_to_that_time(conn: psycopg.Connection) -> None:
    run_id = reminder(conn)
    [task] = claim(conn, "echo")
    defer(conn, task, in_an_hour())
    [msg] = messages(conn, "echo")
    assert 3590 < msg["wait"] <= 3600
    assert msg["msg_id"] == step_row(conn, run_id, "remind")["msg_id"]
    assert claim(conn, "echo") == []


def test_defer_writes_a_deferred_event_with_the_time(conn: psycopg.Connection) -> None:
    run_id = reminder(conn)
    [task] = claim(conn, "echo")
    until = in_an_hour()
    defer(conn, task, until)
    assert event_kinds(conn, run_id, "remind")[-1] == ("deferred", 1)
    detail = events(conn, run_id)[-1]["detail"]
    assert datetime.fromisoformat(detail["not_before"]) == until


def test_runs_overview_shows_the_time_a_deferred_step_waits_for(conn: psycopg.Connection) -> None:
    run_id = reminder(conn)
    [task] = claim(conn, "echo")
    until = in_an_hour()
    defer(conn, task, until)
    conn.execute("set timezone = 'UTC'")
    row = conn.execute("select current_steps from wf.runs_overview where run_id = %s", (run_id,)).fetchone()
    assert row["current_steps"] == f"remind: not before {until:%Y-%m-%d %H:%M:%S} UTC"


def test_deferred_step_is_claimed_again_as_the_same_attempt_when_its_time_comes(conn: psycopg.Connection) -> None:
    run_id = reminder(conn)
    [task] = claim(conn, "echo")
    defer(conn, task, in_an_hour())
    make_visible(conn, "echo")  # the hour has passed
    [again] = claim(conn, "echo")
    assert (again["step"], again["attempt"]) == ("remind", 1)
    assert complete(conn, again, {"sent": True})
    assert run_status(conn, run_id) == "completed"


def test_deferring_uses_no_attempt_of_the_budget(conn: psycopg.Connection) -> None:
    run_id = reminder(conn, max_retries=0)
    for _ in range(3):
        [task] = claim(conn, "echo")
        assert task["attempt"] == 1
        assert defer(conn, task, in_an_hour())
        make_visible(conn, "echo")
    [task] = claim(conn, "echo")
    assert complete(conn, task)
    assert step_row(conn, run_id, "remind")["status"] == "succeeded"


# --- what defer refuses --------------------------------------------------------------------------------


def test_defer_to_a_past_time_returns_false_and_changes_nothing(conn: psycopg.Connection) -> None:
    run_id = reminder(conn)
    [task] = claim(conn, "echo")
    before = (step_row(conn, run_id, "remind"), messages(conn, "echo")[0]["wait"])
    assert defer(conn, task, datetime.now(UTC) - timedelta(minutes=5)) is False
    row = step_row(conn, run_id, "remind")
    assert (row["status"], row["attempt"], row["lease_until"]) == ("running", 1, before[0]["lease_until"])
    assert messages(conn, "echo")[0]["wait"] <= before[1]
    assert "deferred" not in [k for k, _ in event_kinds(conn, run_id)]
    assert complete(conn, task)  # the worker goes on with its call


def test_defer_of_a_stale_attempt_returns_false(conn: psycopg.Connection) -> None:
    run_id = reminder(conn)
    [task] = claim(conn, "echo")
    assert defer(conn, {**task, "attempt": 2}, in_an_hour()) is False
    row = step_row(conn, run_id, "remind")
    assert (row["status"], row["attempt"]) == ("running", 1)
    assert "deferred" not in [k for k, _ in event_kinds(conn, run_id)]


def test_defer_after_the_step_finished_returns_false(conn: psycopg.Connection) -> None:
    run_id = reminder(conn)
    [task] = claim(conn, "echo")
    complete(conn, task)
    assert defer(conn, task, in_an_hour()) is False
    assert step_row(conn, run_id, "remind")["status"] == "succeeded"


@pytest.mark.parametrize("until", ["null", "'infinity'"])
def test_defer_needs_a_finite_time(conn: psycopg.Connection, until: str) -> None:
    reminder(conn)
    [task] = claim(conn, "echo")
    with pytest.raises(errors.InvalidParameterValue, match="defer needs a finite time"):
        conn.execute(f"select wf.defer(%s, %s, %s, {until}::timestamptz)",
                     (task["run_id"], task["step"], task["attempt"]))


# --- wf.define refuses ---------------------------------------------------------------------------------


def one_step(**step: Any) -> dict[str, Any]:
    return {"name": "bad", "steps": [{"name": "a", **step}]}


BAD = {
    "wait_for_without_signal": (
        one_step(wait_for={"timeout_seconds": 60}),
        "workflow bad: step a: wait_for.signal must be a name of 1 to 100 characters, got nothing"),
    "wait_for_empty_signal": (
        one_step(wait_for={"signal": ""}), "wait_for.signal must be a name of 1 to 100 characters"),
    "wait_for_long_signal": (
        one_step(wait_for={"signal": "s" * 101}), "wait_for.signal must be a name of 1 to 100 characters"),
    "wait_for_not_an_object": (
        one_step(wait_for="approved"), "workflow bad: step a: wait_for must be an object"),
    "wait_for_unknown_key": (
        one_step(wait_for={"signal": "x", "timeout": 5}), r"workflow bad: step a: wait_for: unknown key \"timeout\""),
    "negative_timeout": (
        one_step(wait_for={"signal": "x", "timeout_seconds": -1}),
        "workflow bad: step a: wait_for.timeout_seconds must be an integer between 1 and 31536000, got -1"),
    "zero_timeout": (
        one_step(wait_for={"signal": "x", "timeout_seconds": 0}), "wait_for.timeout_seconds must be an integer"),
    "offset_without_not_before": (
        one_step(function="echo", action="go", offset_seconds=-60),
        "workflow bad: step a: offset_seconds needs not_before"),
    "offset_not_an_integer": (
        one_step(function="echo", action="go", not_before="{{ at }}", offset_seconds="soon"),
        "workflow bad: step a.offset_seconds must be an integer"),
    "not_before_empty": (
        one_step(function="echo", action="go", not_before=" "),
        "workflow bad: step a: not_before must be a template rendering to a timestamp"),
    "not_before_not_a_string": (
        one_step(function="echo", action="go", not_before=1700000000),
        "workflow bad: step a: not_before must be a template"),
    "input_template_on_a_function_step": (
        one_step(function="echo", action="go", input_template={}),
        "workflow bad: step a: input_template is not a key of a function step"),
    "payload_template_on_a_sql_step": (
        one_step(sql="public.f", payload_template={}), "payload_template is not a key of a sql step"),
    "args_template_on_a_workflow_step": (
        one_step(workflow="other", args_template={}), "args_template is not a key of a workflow step"),
    "action_on_a_wait_for_step": (
        one_step(wait_for={"signal": "x"}, action="go"), "action is not a key of a wait_for step"),
    "two_kinds": (
        one_step(function="echo", action="go", workflow="other"),
        "workflow bad: step a: needs exactly one of function, workflow, sql, wait_for, got function, workflow"),
    "sql_without_schema": (
        one_step(sql="mark_done"),
        "workflow bad: step a: sql must name a function as schema.function, got \"mark_done\""),
    "workflow_bad_name": (
        one_step(workflow="Other Flow"), "workflow bad: step a: workflow must name a workflow"),
    "input_template_not_an_object": (
        one_step(workflow="other", input_template="{{ x }}"),
        "workflow bad: step a: input_template must be a JSON object"),
}


@pytest.mark.parametrize(("definition", "message"), list(BAD.values()), ids=list(BAD))
def test_define_refuses_bad_part_2_keys_naming_the_place(shared_conn: psycopg.Connection, definition: dict[str, Any],
                                                         message: str) -> None:
    with pytest.raises(errors.InvalidParameterValue, match=message):
        define(shared_conn, definition)
    assert counts(shared_conn, *DEFINITION_TABLES) == dict.fromkeys(DEFINITION_TABLES, 0)
