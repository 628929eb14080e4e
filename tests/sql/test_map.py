"""Map over a list (DESIGN §10, for_each + max_parallel): one step row per item with its own attempts,
retries, DLQ entry and events; the map step's output is the items' outputs in input order; max_parallel
items at a time; wf.retry re-runs only the failed items. The worker's part (rendering for_each) is played
here by calling wf.expand_map with the list."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb
from wfsql import (
    claim,
    complete,
    complete_batch,
    define,
    dlq,
    enqueue,
    fail,
    make_visible,
    run_status,
    step_row,
)


def define_map(conn: psycopg.Connection, name: str = "fan", **send: Any) -> None:
    """send (one echo call per channel) → after (an echo call)."""
    define(conn, {"name": name, "steps": [
        {"name": "send", "function": "echo", "action": "send", "for_each": "{{ channels }}",
         "payload_template": {"channel": "{{ item }}", "i": "{{ item_index }}"}, **send},
        {"name": "after", "function": "echo", "action": "after",
         "payload_template": {"sent": "{{ steps.send.output }}"}}]})


def expand(conn: psycopg.Connection, task: dict[str, Any], items: Any) -> int | None:
    return conn.execute("select wf.expand_map(%s, %s, %s, %s) as n",
                        (task["run_id"], task["step"], task["attempt"], Jsonb(items))).fetchone()["n"]


def started_map(conn: psycopg.Connection, items: list[Any], **send: Any) -> str:
    define_map(conn, **send)
    run_id = enqueue(conn, "fan", {"channels": items})
    [task] = claim(conn, "echo")
    assert (task["step"], task["item"], task["for_each"]) == ("send", None, "{{ channels }}")
    assert expand(conn, task, items) == len(items)
    return run_id


def items(conn: psycopg.Connection, run_id: str) -> dict[str, str]:
    rows = conn.execute("select name, status from wf.steps where run_id = %s and map_step = 'send' order by item",
                        (run_id,)).fetchall()
    return {r["name"]: r["status"] for r in rows}


def test_an_expanded_map_step_has_one_step_per_item_and_waits_without_a_lease(conn):
    run_id = started_map(conn, ["sms", "email", "push"])
    assert items(conn, run_id) == {"send[0]": "queued", "send[1]": "queued", "send[2]": "queued"}
    send = step_row(conn, run_id, "send")
    assert (send["status"], send["lease_until"]) == ("running", None)
    tasks = claim(conn, "echo")
    assert [(t["step"], t["item"], t["context"]["item"], t["context"]["item_index"]) for t in tasks] == [
        ("send[0]", 0, "sms", 0), ("send[1]", 1, "email", 1), ("send[2]", 2, "push", 2)]


def test_the_map_steps_output_is_the_items_outputs_in_input_order(conn):
    run_id = started_map(conn, ["sms", "email", "push"])
    tasks = claim(conn, "echo")
    for task in reversed(tasks):  # answered in the opposite order
        complete(conn, task, {"sent": task["context"]["item"]})
    send = step_row(conn, run_id, "send")
    assert (send["status"], send["output"]) == ("succeeded", [{"sent": "sms"}, {"sent": "email"}, {"sent": "push"}])
    [after] = claim(conn, "echo")  # fan-in: the next step waited for every item
    assert after["step"] == "after"
    assert after["context"]["steps"]["send"]["output"] == [{"sent": "sms"}, {"sent": "email"}, {"sent": "push"}]
    assert "send[0]" not in after["context"]["steps"]  # items stay out of later steps' context


def test_max_parallel_items_at_a_time(conn):
    run_id = started_map(conn, list(range(5)), max_parallel=2)
    assert list(items(conn, run_id).values()) == ["queued", "queued", "waiting", "waiting", "waiting"]
    first = claim(conn, "echo")
    assert [t["step"] for t in first] == ["send[0]", "send[1]"]
    complete(conn, first[0], {})
    assert list(items(conn, run_id).values()) == ["succeeded", "running", "queued", "waiting", "waiting"]
    assert [t["step"] for t in claim(conn, "echo")] == ["send[2]"]


def test_an_item_is_retried_on_its_own(conn):
    run_id = started_map(conn, ["a", "b"])
    first, second = claim(conn, "echo")
    complete(conn, first, {"ok": "a"})
    fail(conn, second, "flaky")
    make_visible(conn, "echo")
    [again] = claim(conn, "echo")
    assert (again["step"], again["attempt"]) == ("send[1]", 2)
    complete(conn, again, {"ok": "b"})
    assert step_row(conn, run_id, "send")["output"] == [{"ok": "a"}, {"ok": "b"}]
    kinds = [r["kind"] for r in conn.execute(
        "select kind from wf.events where run_id = %s and step = 'send[1]' order by id", (run_id,))]
    assert kinds == ["started", "retrying", "started", "succeeded"]


def test_a_dead_item_fails_the_run_with_its_own_dead_letter(conn):
    run_id = started_map(conn, ["a", "b", "c"], max_retries=0)
    first, second, third = claim(conn, "echo")
    fail(conn, second, "bad channel")
    assert run_status(conn, run_id) == "failed"
    assert [m["message"]["step"] for m in dlq(conn)] == ["send[1]"]
    complete(conn, first, {})  # calls in flight are recorded
    complete(conn, third, {})
    send = step_row(conn, run_id, "send")
    assert send["status"] == "cancelled"  # it waited without a call: stopped with its run
    assert items(conn, run_id) == {"send[0]": "succeeded", "send[1]": "dead", "send[2]": "succeeded"}


def test_with_on_failure_continue_the_output_holds_null_for_a_failed_item(conn):
    run_id = started_map(conn, ["a", "b"], max_retries=0, on_failure="continue")
    first, second = claim(conn, "echo")
    complete(conn, first, {"ok": "a"})
    fail(conn, second, "bad channel")
    send = step_row(conn, run_id, "send")
    assert (send["status"], send["output"], send["error"]) == ("failed", [{"ok": "a"}, None], "1 of 2 items failed")
    assert run_status(conn, run_id) == "running"
    assert [t["step"] for t in claim(conn, "echo")] == ["after"]


def test_retry_of_a_failed_run_reruns_only_the_failed_items(conn):
    run_id = started_map(conn, ["a", "b", "c"], max_retries=0)
    first, second, third = claim(conn, "echo")
    complete(conn, first, {"ok": "a"})
    fail(conn, second, "bad channel")
    complete(conn, third, {"ok": "c"})
    assert conn.execute("select wf.retry(%s) as ok", (run_id,)).fetchone()["ok"]
    for task in claim(conn, "echo"):
        if task["step"] == "send":  # the map step expands again: the same list, nothing new
            assert expand(conn, task, ["a", "b", "c"]) == 3
        else:
            assert task["step"] == "send[1]"
            complete(conn, task, {"ok": "b"})
    send = step_row(conn, run_id, "send")
    assert (send["status"], send["output"]) == ("succeeded", [{"ok": "a"}, {"ok": "b"}, {"ok": "c"}])
    attempts = {r["name"]: r["attempt"] for r in conn.execute(
        "select name, attempt from wf.steps where run_id = %s and map_step = 'send'", (run_id,))}
    assert attempts == {"send[0]": 1, "send[1]": 2, "send[2]": 1}
    assert [t["step"] for t in claim(conn, "echo")] == ["after"]


def test_an_empty_list_succeeds_at_once_with_an_empty_output(conn):
    define_map(conn)
    run_id = enqueue(conn, "fan", {"channels": []})
    [task] = claim(conn, "echo")
    assert expand(conn, task, []) == 0
    assert step_row(conn, run_id, "send")["output"] == []
    assert [t["step"] for t in claim(conn, "echo")] == ["after"]


@pytest.mark.parametrize(("value", "error"), [
    ({"not": "a list"}, "step send: for_each rendered object, not a list"),
    (list(range(1001)), "step send: for_each rendered 1001 items, more than the 1000 allowed")])
def test_a_for_each_that_is_not_a_list_of_at_most_1000_fails_the_step_without_retry(conn, value, error):
    define_map(conn)
    run_id = enqueue(conn, "fan", {"channels": []})
    [task] = claim(conn, "echo")
    assert expand(conn, task, value) is None
    send = step_row(conn, run_id, "send")
    assert (send["status"], send["error"], send["attempt"]) == ("dead", error, 1)
    assert items(conn, run_id) == {}


def test_progress_counts_steps_and_current_steps_counts_items(conn):
    run_id = started_map(conn, ["a", "b", "c"])
    first, *_ = claim(conn, "echo")
    complete(conn, first, {})
    row = conn.execute("select progress, current_steps from wf.runs_overview where run_id = %s", (run_id,)).fetchone()
    assert row == {"progress": "0/2", "current_steps": "send: 1/3 items"}


def test_a_thousand_items_complete(conn):
    run_id = started_map(conn, [{"n": i} for i in range(1000)])
    while tasks := [t for t in claim(conn, "echo", 500) if t["item"] is not None]:
        complete_batch(conn, tasks, [{"n": t["context"]["item"]["n"]} for t in tasks])
    send = step_row(conn, run_id, "send")
    assert send["status"] == "succeeded"
    assert [o["n"] for o in send["output"]] == list(range(1000))
    assert step_row(conn, run_id, "after")["status"] == "running"  # claimed with the last batch


def test_a_map_of_workflow_steps_starts_one_child_per_item(conn):
    define(conn, {"name": "child", "steps": [{"name": "c1", "function": "echo", "action": "go"}]})
    define(conn, {"name": "fan", "steps": [
        {"name": "each", "workflow": "child", "for_each": "{{ ids }}", "input_template": {"id": "{{ item }}"}}]})
    run_id = enqueue(conn, "fan", {"ids": [7, 8]})
    [task] = claim(conn, "_wf")
    expand(conn, task, [7, 8])
    children = []
    for item in claim(conn, "_wf"):
        children.append(conn.execute("select wf.start_child(%s, %s, %s, %s) as id", (
            item["run_id"], item["step"], item["attempt"], Jsonb({"id": item["context"]["item"]}))).fetchone()["id"])
    for call in claim(conn, "echo"):
        complete(conn, call, {"child_input": call["context"]["input"]})
    assert claim(conn, "_wf") == []  # the children's ends reach their items
    each = step_row(conn, run_id, "each")
    assert each["output"] == [{"c1": {"child_input": {"id": 7}}}, {"c1": {"child_input": {"id": 8}}}]
    assert run_status(conn, run_id) == "completed"
    assert len(set(children)) == 2


@pytest.mark.parametrize(("step", "message"), [
    ({"for_each": "{{ xs }}", "max_parallel": 0}, "max_parallel must be an integer between 1 and 1000"),
    ({"for_each": "{{ xs }}", "max_parallel": 1.5}, "max_parallel must be an integer between 1 and 1000"),
    ({"max_parallel": 2}, "max_parallel needs for_each"),
    ({"for_each": ["a"]}, "for_each must be a template rendering to a list"),
])
def test_define_refuses_a_bad_map(conn, step, message):
    with pytest.raises(errors.InvalidParameterValue, match=message):
        define(conn, {"name": "w", "steps": [{"name": "s", "function": "echo", "action": "go", **step}]})


def test_item_is_not_an_input_variable_of_a_map_step(conn):
    define_map(conn)
    assert conn.execute("select input_vars from wf.definitions").fetchone()["input_vars"] == ["channels"]
