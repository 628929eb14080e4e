"""Map over a list with the real worker and real Deno functions: the worker renders for_each, every item
is one call with `{{ item }}` in its payload, no more than max_parallel calls run at once (counted by the
function itself), the outputs come back in input order, and a for_each that is not a list fails the step
without retry, naming it."""

from __future__ import annotations

import uuid

from wfproc import wait_final
from wfsql import define, enqueue, step_row


def test_max_parallel_items_run_at_once_and_the_outputs_keep_the_input_order(db, conn, start_worker):
    key = uuid.uuid4().hex  # the function's in-flight counter for this test only
    define(conn, {"name": "fan-out", "steps": [
        {"name": "send", "function": "misbehave", "action": "overlap", "for_each": "{{ channels }}",
         "max_parallel": 3, "payload_template": {"key": key, "ms": 150, "item": "{{ item }}"}},
        {"name": "done", "function": "echo", "action": "go",
         "payload_template": {"n": "{{ steps.send.output | length }}"}}]})
    channels = [f"channel-{i}" for i in range(12)]
    run_id = enqueue(conn, "fan-out", {"channels": channels})
    worker = start_worker(db, "--concurrency", "16", "--poll-interval", "0.2")
    assert wait_final(conn, run_id, 30, worker) == {run_id: "completed"}

    output = step_row(conn, run_id, "send")["output"]
    assert [o["item"] for o in output] == channels
    most = max(o["most_in_flight"] for o in output)
    assert 2 <= most <= 3, most  # items did overlap, never more than max_parallel
    assert step_row(conn, run_id, "done")["output"]["payload"] == {"n": 12}


def test_a_for_each_that_is_not_a_list_fails_the_step_without_retry(db, conn, start_worker):
    define(conn, {"name": "fan-out", "steps": [
        {"name": "send", "function": "echo", "action": "go", "for_each": "{{ channels }}"}]})
    run_id = enqueue(conn, "fan-out", {"channels": "sms"})
    worker = start_worker(db)
    assert wait_final(conn, run_id, 15, worker) == {run_id: "failed"}
    send = step_row(conn, run_id, "send")
    assert send["attempt"] == 1
    assert "step send: for_each rendered str 'sms', not a list" in send["error"]
