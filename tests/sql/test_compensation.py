"""Compensation (sagas, DESIGN §10): when a run fails, its succeeded steps' compensations run one at a
time in reverse order of completion, retried like steps; the run is compensating, then failed — or
compensation_failed when a compensation fails for good, which wf.retry resumes."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import errors
from wfsql import claim, complete, counts, define, dlq, enqueue, event_kinds, fail, make_visible, run_status


def booking(conn, **refund: Any) -> str:
    """charge → reserve → notify (dies at once); charge and reserve can be undone, notify cannot."""
    define(conn, {"name": "booking", "max_retries": 0, "steps": [
        {"name": "charge", "function": "echo", "action": "charge", "payload_template": {"amount": "{{ amount }}"},
         "compensate": {"function": "echo", "action": "refund",
                        "payload_template": {"charge_id": "{{ steps.charge.output.charge_id }}"}, **refund}},
        {"name": "reserve", "function": "echo", "action": "reserve",
         "compensate": {"function": "echo", "action": "release"}},
        {"name": "skipped", "function": "echo", "action": "x", "when": "{{ false }}",
         "compensate": {"function": "echo", "action": "never"}},
        {"name": "notify", "function": "echo", "action": "notify"}]})
    return enqueue(conn, "booking", {"amount": 40})


def run_until_notify_dies(conn, run_id: str) -> None:
    for step, output in (("charge", {"charge_id": "ch_1"}), ("reserve", {"reservation": "r_1"})):
        [task] = claim(conn, "echo")
        assert task["step"] == step
        complete(conn, task, output)
    [skipped] = claim(conn, "echo")
    conn.execute("select wf.skip(%s, %s, %s, 'when')", (skipped["run_id"], skipped["step"], skipped["attempt"]))
    [notify] = claim(conn, "echo")
    assert notify["step"] == "notify"
    fail(conn, notify, "mail server down")


def test_compensations_run_in_reverse_order_of_completion_and_the_run_ends_failed(conn):
    run_id = booking(conn)
    run_until_notify_dies(conn, run_id)
    assert run_status(conn, run_id) == "compensating"
    [release] = claim(conn, "echo")  # reserve succeeded last: it is undone first, alone
    assert (release["step"], release["action"]) == ("reserve:compensate", "release")
    assert claim(conn, "echo") == []
    complete(conn, release, {})
    [refund] = claim(conn, "echo")
    assert (refund["step"], refund["action"]) == ("charge:compensate", "refund")
    complete(conn, refund, {})
    assert run_status(conn, run_id) == "failed"
    kinds = [k for k, _ in event_kinds(conn, run_id)]
    assert kinds[-1] == "run_compensated" and "run_compensating" in kinds


def test_only_succeeded_steps_are_compensated(conn):
    run_id = booking(conn)
    run_until_notify_dies(conn, run_id)
    names = {r["name"] for r in conn.execute(
        "select name from wf.steps where run_id = %s and compensates is not null", (run_id,))}
    assert names == {"charge:compensate", "reserve:compensate"}  # not the skipped step, not the dead one


def test_a_compensations_template_sees_the_undone_steps_output(conn):
    run_id = booking(conn)
    run_until_notify_dies(conn, run_id)
    complete(conn, claim(conn, "echo")[0], {})
    [refund] = claim(conn, "echo")
    assert refund["payload_template"] == {"charge_id": "{{ steps.charge.output.charge_id }}"}
    assert refund["context"]["steps"]["charge"]["output"] == {"charge_id": "ch_1"}


def test_a_failing_compensation_is_retried_then_the_run_is_compensation_failed(conn):
    run_id = booking(conn, max_retries=1)
    run_until_notify_dies(conn, run_id)
    complete(conn, claim(conn, "echo")[0], {})  # release
    [refund] = claim(conn, "echo")
    fail(conn, refund, "payment provider down")
    assert run_status(conn, run_id) == "compensating"
    make_visible(conn, "echo")
    [again] = claim(conn, "echo")
    assert (again["step"], again["attempt"]) == ("charge:compensate", 2)
    fail(conn, again, "payment provider down")
    assert run_status(conn, run_id) == "compensation_failed"
    assert [m["message"]["step"] for m in dlq(conn)] == ["notify", "charge:compensate"]
    failures = conn.execute("select step, run_status from wf.failures where run_id = %s and step = %s",
                            (run_id, "charge:compensate")).fetchone()
    assert failures == {"step": "charge:compensate", "run_status": "compensation_failed"}


def test_retry_of_a_compensation_failed_run_resumes_the_compensations(conn):
    run_id = booking(conn)
    run_until_notify_dies(conn, run_id)
    complete(conn, claim(conn, "echo")[0], {})
    fail(conn, claim(conn, "echo")[0], "payment provider down")
    assert run_status(conn, run_id) == "compensation_failed"
    assert conn.execute("select wf.retry(%s) as ok", (run_id,)).fetchone()["ok"]
    assert run_status(conn, run_id) == "compensating"
    [refund] = claim(conn, "echo")
    assert refund["step"] == "charge:compensate"
    complete(conn, refund, {})
    assert run_status(conn, run_id) == "failed"
    assert [m["message"]["step"] for m in dlq(conn)] == ["notify"]


def test_a_compensated_run_is_not_retried(conn):
    run_id = booking(conn)
    run_until_notify_dies(conn, run_id)
    for _ in range(2):
        complete(conn, claim(conn, "echo")[0], {})
    with pytest.raises(errors.InvalidParameterValue, match="was rolled back by its compensations"):
        conn.execute("select wf.retry(%s)", (run_id,))


def test_a_run_without_compensations_fails_as_before(conn):
    define(conn, {"name": "plain", "max_retries": 0, "steps": [
        {"name": "a", "function": "echo", "action": "go"}, {"name": "b", "function": "echo", "action": "go"}]})
    run_id = enqueue(conn, "plain")
    complete(conn, claim(conn, "echo")[0], {})
    fail(conn, claim(conn, "echo")[0], "boom")
    assert run_status(conn, run_id) == "failed"


def test_progress_counts_the_workflows_steps_not_the_compensations(conn):
    run_id = booking(conn)
    run_until_notify_dies(conn, run_id)
    row = conn.execute("select progress, current_steps from wf.runs_overview where run_id = %s", (run_id,)).fetchone()
    assert row == {"progress": "3/4", "current_steps": "reserve:compensate (queued)"}


@pytest.mark.parametrize(("compensate", "message"), [
    ({"action": "refund"}, "compensate needs exactly one of function, sql, got none"),
    ({"function": "pay", "sql": "x.y"}, "compensate needs exactly one of function, sql"),
    ({"function": "pay"}, "compensate: action must be a non-empty string"),
    ({"function": "pay", "action": "refund", "when": "x"}, 'compensate: unknown key "when"'),
    ("refund", "compensate must be an object"),
    ({"sql": "public.nope"}, "sql function public.nope is not allowed as a step"),
])
def test_define_refuses_a_bad_compensation(conn, compensate, message):
    with pytest.raises(errors.InvalidParameterValue, match=message):
        define(conn, {"name": "w", "steps": [
            {"name": "charge", "function": "echo", "action": "go", "compensate": compensate}]})
    assert counts(conn, "wf.definitions")["wf.definitions"] == 0
