"""Run flow: fan-out / fan-in, delays, wf.retry, wf.cancel."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row
from wfsql import (
    archived,
    chain,
    claim,
    complete,
    define,
    diamond,
    dlq,
    enqueue,
    event_kinds,
    events,
    fail,
    make_visible,
    messages,
    run_status,
    skip,
    step_row,
    step_statuses,
    wait_until_blocked_or_done,
)

# --- order --------------------------------------------------------------------------------------


def test_steps_run_in_list_order_without_depends_on(conn):
    define(conn, chain(n=3))
    run_id = enqueue(conn, "chain")
    order = []
    while tasks := claim(conn, "echo"):
        assert len(tasks) == 1
        order.append(tasks[0]["step"])
        complete(conn, tasks[0])
    assert order == ["s1", "s2", "s3"]
    assert run_status(conn, run_id) == "completed"


def test_fan_out_queues_parallel_steps_together(conn):
    define(conn, diamond())
    run_id = enqueue(conn, "diamond")
    [a] = claim(conn, "echo")
    complete(conn, a)
    assert sorted(t["step"] for t in claim(conn, "echo")) == ["b", "c"]
    assert step_row(conn, run_id, "d")["status"] == "waiting"


def test_fan_in_waits_for_every_dependency(conn):
    define(conn, diamond())
    run_id = enqueue(conn, "diamond")
    [a] = claim(conn, "echo")
    complete(conn, a)
    tasks = {t["step"]: t for t in claim(conn, "echo")}
    complete(conn, tasks["b"], {"from": "b"})
    assert claim(conn, "echo") == []
    assert step_row(conn, run_id, "d")["status"] == "waiting"
    complete(conn, tasks["c"], {"from": "c"})
    [d] = claim(conn, "echo")
    assert d["step"] == "d"
    assert {k: v["output"] for k, v in d["context"]["steps"].items() if k in "bc"} == {
        "b": {"from": "b"}, "c": {"from": "c"}}
    complete(conn, d)
    assert run_status(conn, run_id) == "completed"


def test_fan_in_counts_a_skipped_or_failed_dependency_as_done(conn):
    definition = diamond()
    definition["steps"][2].update(on_failure="continue", max_retries=0)
    define(conn, definition)
    run_id = enqueue(conn, "diamond")
    [a] = claim(conn, "echo")
    complete(conn, a)
    tasks = {t["step"]: t for t in claim(conn, "echo")}
    skip(conn, tasks["b"])
    fail(conn, tasks["c"], "no")
    assert step_statuses(conn, run_id) == {"a": "succeeded", "b": "skipped", "c": "failed", "d": "queued"}


def test_fan_in_race_queues_the_joining_step_exactly_once(conn, db):
    # b and c finish at the same time on two connections: each transaction, looking on its own,
    # sees the other branch still running; the run lock must serialise them so that the later
    # one sees both done and queues d (once)
    define(conn, diamond())
    run_id = enqueue(conn, "diamond")
    [a] = claim(conn, "echo")
    complete(conn, a)
    tasks = {t["step"]: t for t in claim(conn, "echo")}
    with psycopg.connect(db, row_factory=dict_row) as first:  # not autocommit: holds its transaction
        assert complete(first, tasks["b"])
        other = threading.Thread(target=lambda: complete_on_new_connection(db, tasks["c"]))
        other.start()
        wait_until_blocked_or_done(conn, other)
        first.commit()
        other.join(timeout=30)
    assert step_statuses(conn, run_id) == {"a": "succeeded", "b": "succeeded", "c": "succeeded", "d": "queued"}
    [d] = claim(conn, "echo")
    assert d["step"] == "d"
    assert [m["message"]["step"] for m in messages(conn, "echo")] == ["d"]  # one message for d


def complete_on_new_connection(db: str, task: dict) -> None:
    with psycopg.connect(db, autocommit=True, row_factory=dict_row) as c:
        assert complete(c, task)


def test_delay_seconds_delays_the_steps_message(conn):
    definition = chain(n=2)
    definition["steps"][1]["delay_seconds"] = 300
    define(conn, definition)
    run_id = enqueue(conn, "chain")
    [s1] = claim(conn, "echo")
    complete(conn, s1)
    [msg] = messages(conn, "echo")
    assert 298 <= msg["wait"] <= 300.5
    assert claim(conn, "echo") == []
    # the event that queued s2 says so, with the delay
    [done] = [e for e in events(conn, run_id) if e["kind"] == "succeeded"]
    assert done["detail"]["queued"] == {"s2": 300}
    make_visible(conn, "echo")  # five minutes later
    assert [t["step"] for t in claim(conn, "echo")] == ["s2"]


def test_delay_seconds_on_the_first_step_delays_the_run_start(conn):
    define(conn, chain(n=1, delay_seconds=60))
    enqueue(conn, "chain")
    [msg] = messages(conn, "echo")
    assert 58 <= msg["wait"] <= 60.5


# --- wf.retry -----------------------------------------------------------------------------------


@pytest.fixture
def dead_run(conn):
    """chain s1 → s2 → s3, one attempt each: s1 succeeded, s2 dead, s3 cancelled."""
    define(conn, chain(n=3, max_retries=0))
    run_id = enqueue(conn, "chain")
    [s1] = claim(conn, "echo")
    complete(conn, s1, {"n": 1})
    [s2] = claim(conn, "echo")
    fail(conn, s2, "down", http_status=503)
    assert run_status(conn, run_id) == "failed"
    return run_id


def test_retry_resumes_only_the_dead_step(conn, dead_run):
    assert conn.execute("select wf.retry(%s) as ok", (dead_run,)).fetchone()["ok"] is True
    assert run_status(conn, dead_run) == "running"
    assert step_statuses(conn, dead_run) == {"s1": "succeeded", "s2": "queued", "s3": "waiting"}
    [s2] = claim(conn, "echo")
    assert s2["step"] == "s2"
    assert s2["context"]["steps"]["s1"]["output"] == {"n": 1}
    complete(conn, s2)
    [s3] = claim(conn, "echo")
    complete(conn, s3)
    assert run_status(conn, dead_run) == "completed"
    s1 = step_row(conn, dead_run, "s1")
    assert s1["attempt"] == 1  # never repeated
    assert [k for k, a in event_kinds(conn, dead_run, "s1") if k == "started"] == ["started"]


def test_retry_keeps_attempt_numbers_growing(conn, dead_run):
    conn.execute("select wf.retry(%s)", (dead_run,))
    [s2] = claim(conn, "echo")
    assert s2["attempt"] == 2
    assert step_row(conn, dead_run, "s2")["attempt_base"] == 1


def test_retry_gives_the_step_a_fresh_attempt_budget(conn, dead_run):
    conn.execute("select wf.retry(%s)", (dead_run,))
    [s2] = claim(conn, "echo")
    fail(conn, s2, "down again")  # max_retries 0: one attempt per retry
    assert step_row(conn, dead_run, "s2")["status"] == "dead"
    assert run_status(conn, dead_run) == "failed"


def test_retry_archives_the_dlq_message(conn, dead_run):
    [dead] = dlq(conn)
    assert dead["message"]["run_id"] == dead_run
    conn.execute("select wf.retry(%s)", (dead_run,))
    assert dlq(conn) == []
    assert [a["msg_id"] for a in conn.execute("select msg_id from pgmq.a_wf_dlq").fetchall()] == [dead["msg_id"]]
    assert step_row(conn, dead_run, "s2")["dlq_msg_id"] is None


def test_late_answer_from_before_a_retry_is_a_no_op(conn):
    define(conn, chain(n=1, max_retries=0))
    run_id = enqueue(conn, "chain")
    [old] = claim(conn, "echo")
    fail(conn, old)
    conn.execute("select wf.retry(%s)", (run_id,))
    [new] = claim(conn, "echo")
    assert complete(conn, old) is False
    assert step_row(conn, run_id, "s1")["status"] == "running"
    assert complete(conn, new)


@pytest.mark.parametrize("status", ["running", "completed", "cancelled"])
def test_retry_of_a_run_that_has_not_failed_returns_false(conn, status):
    define(conn, chain(n=1))
    run_id = enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    if status == "completed":
        complete(conn, task)
    elif status == "cancelled":
        conn.execute("select wf.cancel(%s)", (run_id,))
    assert conn.execute("select wf.retry(%s) as ok", (run_id,)).fetchone()["ok"] is False
    assert run_status(conn, run_id) == status


# --- wf.cancel ----------------------------------------------------------------------------------


def test_cancel_stops_the_run_and_removes_its_messages(conn):
    define(conn, diamond())
    run_id = enqueue(conn, "diamond")
    [a] = claim(conn, "echo")
    complete(conn, a)
    [b] = claim(conn, "echo", 1)
    assert b["step"] == "b"
    assert step_statuses(conn, run_id)["c"] == "queued"
    assert conn.execute("select wf.cancel(%s, 'user asked') as ok", (run_id,)).fetchone()["ok"] is True

    run = conn.execute("select status, error from wf.runs where id = %s", (run_id,)).fetchone()
    assert run == {"status": "cancelled", "error": "user asked"}
    assert step_statuses(conn, run_id) == {"a": "succeeded", "b": "cancelled", "c": "cancelled", "d": "cancelled"}
    assert messages(conn, "echo") == []
    assert {m["message"]["step"] for m in archived(conn, "echo")} == {"a", "b", "c"}
    assert claim(conn, "echo") == []


def test_late_answers_after_cancel_are_no_ops(conn):
    define(conn, chain(n=2))
    run_id = enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    conn.execute("select wf.cancel(%s)", (run_id,))
    assert complete(conn, task) is False
    assert fail(conn, task) is False
    assert step_statuses(conn, run_id) == {"s1": "cancelled", "s2": "cancelled"}
    assert run_status(conn, run_id) == "cancelled"
    assert [e["detail"]["answer"] for e in events(conn, run_id) if e["kind"] == "stale_answer"] == [
        "complete", "fail"]


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_cancel_of_a_finished_run_returns_false(conn, status):
    define(conn, chain(n=1, max_retries=0))
    run_id = enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    if status == "completed":
        complete(conn, task)
    elif status == "failed":
        fail(conn, task)
    else:
        conn.execute("select wf.cancel(%s)", (run_id,))
    assert conn.execute("select wf.cancel(%s) as ok", (run_id,)).fetchone()["ok"] is False
    assert run_status(conn, run_id) == status


def test_cancel_of_a_scheduled_run_removes_its_delayed_message(conn):
    define(conn, chain(n=1))
    run_id = conn.execute(
        "select wf.enqueue('chain', run_at => now() + interval '1 day')::text as id").fetchone()["id"]
    assert conn.execute("select wf.cancel(%s) as ok", (run_id,)).fetchone()["ok"] is True
    assert messages(conn, "echo") == []


@pytest.mark.parametrize("fn", ["cancel", "retry"])
def test_cancel_or_retry_of_an_unknown_run_raises_naming_it(shared_conn, fn):
    run_id = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(errors.NoDataFound, match=f"unknown run {run_id}"):
        shared_conn.execute(f"select wf.{fn}(%s)", (run_id,))


@pytest.mark.parametrize("fn", ["cancel", "retry"])
def test_cancel_or_retry_of_null_is_rejected(shared_conn, fn):
    with pytest.raises(errors.InvalidParameterValue, match="run_id must not be null"):
        shared_conn.execute(f"select wf.{fn}(null)")


# --- retention ----------------------------------------------------------------------------------
