"""Pause and resume (DESIGN §10): a paused run starts nothing new while its calls in flight finish and
are recorded, and goes on where it stopped; a paused stage is not claimed from and its messages wait
untouched — 10,000 of them are each claimed exactly once after resume."""

from __future__ import annotations

import pytest
from psycopg import errors
from wfsql import (
    chain,
    claim,
    complete,
    define,
    enqueue,
    event_kinds,
    fail,
    make_visible,
    messages,
    run_status,
    step_statuses,
)


def paused_with_a_call_in_flight(conn) -> tuple[str, dict]:
    define(conn, chain(n=3))
    run_id = enqueue(conn, "chain")
    [first] = claim(conn, "echo")
    assert conn.execute("select wf.pause(%s) as ok", (run_id,)).fetchone()["ok"]
    return run_id, first


def test_a_paused_runs_call_in_flight_is_recorded_and_nothing_new_starts(conn):
    run_id, first = paused_with_a_call_in_flight(conn)
    assert run_status(conn, run_id) == "paused"
    assert complete(conn, first, {"ok": 1})
    assert step_statuses(conn, run_id) == {"s1": "succeeded", "s2": "waiting", "s3": "waiting"}
    assert messages(conn, "echo") == [] and claim(conn, "echo") == []


def test_resume_starts_what_became_ready_and_the_run_completes(conn):
    run_id, first = paused_with_a_call_in_flight(conn)
    complete(conn, first, {"ok": 1})
    assert conn.execute("select wf.resume(%s) as ok", (run_id,)).fetchone()["ok"]
    assert run_status(conn, run_id) == "running"
    for step in ("s2", "s3"):
        [task] = claim(conn, "echo")
        assert task["step"] == step
        complete(conn, task, {})
    assert run_status(conn, run_id) == "completed"
    assert [kind for kind, _ in event_kinds(conn, run_id)].count("run_resumed") == 1


def test_pausing_unqueues_waiting_steps_without_using_their_attempts(conn):
    define(conn, chain(n=1))
    run_id = enqueue(conn, "chain")
    assert len(messages(conn, "echo")) == 1
    conn.execute("select wf.pause(%s)", (run_id,))
    assert messages(conn, "echo") == []
    assert conn.execute("select status, attempt from wf.steps where run_id = %s", (run_id,)).fetchone() == {
        "status": "waiting", "attempt": 0}
    conn.execute("select wf.resume(%s)", (run_id,))
    [task] = claim(conn, "echo")
    assert task["attempt"] == 1
    assert run_status(conn, run_id) == "running"


def test_a_run_paused_with_nothing_left_completes_on_resume(conn):
    define(conn, chain(name="one", n=1))
    one = enqueue(conn, "one")
    [task] = [t for t in claim(conn, "echo") if str(t["run_id"]) == one]
    conn.execute("select wf.pause(%s)", (one,))
    complete(conn, task, {"done": True})
    assert run_status(conn, one) == "paused"
    conn.execute("select wf.resume(%s)", (one,))
    assert run_status(conn, one) == "completed"


@pytest.mark.parametrize("fn", ["pause", "resume"])
def test_pause_and_resume_of_a_final_run_return_false(conn, fn):
    define(conn, chain(n=1))
    run_id = enqueue(conn, "chain")
    conn.execute("select wf.cancel(%s)", (run_id,))
    assert conn.execute(f"select wf.{fn}(%s) as ok", (run_id,)).fetchone()["ok"] is False
    assert run_status(conn, run_id) == "cancelled"


def test_resume_of_a_run_that_is_not_paused_returns_false(conn):
    define(conn, chain(n=1))
    run_id = enqueue(conn, "chain")
    assert conn.execute("select wf.resume(%s) as ok", (run_id,)).fetchone()["ok"] is False


@pytest.mark.parametrize("call", ["select wf.pause(%s)", "select wf.resume(%s)"])
def test_pausing_an_unknown_run_raises_p0002_naming_it(conn, call):
    missing = "01a20000-0000-7000-8000-000000000000"
    with pytest.raises(errors.NoDataFound, match=f"unknown run {missing}"):
        conn.execute(call, (missing,))


# ---- stages --------------------------------------------------------------------------------------


def test_a_paused_stage_is_not_claimed_from_and_its_messages_wait_untouched(conn):
    define(conn, chain(n=1))
    for _ in range(3):
        enqueue(conn, "chain")
    untouched = "select msg_id, read_ct, vt from pgmq.q_wf_echo order by msg_id"
    before = conn.execute(untouched).fetchall()
    assert conn.execute("select wf.pause_stage('echo') as ok").fetchone()["ok"]
    assert claim(conn, "echo") == []
    assert conn.execute(untouched).fetchall() == before  # the same messages, never read
    health = conn.execute("select depth, paused from wf.stage_health where stage = 'echo'").fetchone()
    assert health == {"depth": 3, "paused": True}
    assert conn.execute("select wf.pause_stage('echo') as ok").fetchone()["ok"] is False


def test_a_resumed_stage_is_claimed_from_again(conn):
    define(conn, chain(n=1))
    enqueue(conn, "chain")
    conn.execute("select wf.pause_stage('echo')")
    assert conn.execute("select wf.resume_stage('echo') as ok").fetchone()["ok"]
    assert len(claim(conn, "echo")) == 1
    assert conn.execute("select paused from wf.stage_health where stage = 'echo'").fetchone()["paused"] is False
    assert conn.execute("select wf.resume_stage('echo') as ok").fetchone()["ok"] is False


@pytest.mark.parametrize("fn", ["pause_stage", "resume_stage"])
def test_pausing_an_unknown_stage_raises_p0002_naming_it(conn, fn):
    with pytest.raises(errors.NoDataFound, match="unknown stage nope"):
        conn.execute(f"select wf.{fn}('nope')")


def test_ten_thousand_messages_wait_through_a_stage_pause_and_are_each_claimed_once(conn):
    define(conn, chain(n=1))
    conn.execute("select wf.enqueue('chain', jsonb_build_object('i', i)) from generate_series(1, 10000) i")
    conn.execute("select wf.pause_stage('echo')")
    assert claim(conn, "echo", 1000) == []
    conn.execute("select wf.resume_stage('echo')")
    claimed: list[str] = []
    while batch := claim(conn, "echo", 1000):
        claimed += [str(t["run_id"]) for t in batch]
    assert len(claimed) == len(set(claimed)) == 10000
    assert conn.execute("select count(*) as n from wf.steps where status = 'running' and attempt = 1"
                        ).fetchone()["n"] == 10000


def test_a_call_that_fails_while_its_run_is_paused_is_retried_only_after_resume(conn):
    run_id, first = paused_with_a_call_in_flight(conn)
    fail(conn, first, "flaky")  # retryable: its message comes back after the backoff
    make_visible(conn, "echo")
    assert claim(conn, "echo") == []  # the claim sees the run paused: the step waits with it
    assert conn.execute("select status, attempt from wf.steps where run_id = %s and name = 's1'",
                        (run_id,)).fetchone() == {"status": "waiting", "attempt": 1}
    assert messages(conn, "echo") == []
    conn.execute("select wf.resume(%s)", (run_id,))
    [again] = claim(conn, "echo")
    assert (again["step"], again["attempt"]) == ("s1", 2)
