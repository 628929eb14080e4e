"""Regression tests: one per bug found in the SQL, named after the bug."""

from __future__ import annotations

import pytest
from psycopg import errors
from wfsql import (
    chain,
    claim,
    complete_batch,
    counts,
    define,
    enqueue,
    fail,
    make_visible,
    messages,
    run_status,
    step_row,
)


def test_default_filter_made_a_template_variable_required(conn):
    # the check used `\b`, which PostgreSQL regexes read as a backspace, not a word boundary
    define(conn, {"name": "w", "steps": [{"name": "a", "function": "echo", "action": "go",
                                          "payload_template": {"n": "{{ nick | default('x') }}",
                                                               "m": "{{ name|d('y') }}"}}]})
    assert conn.execute("select input_vars from wf.definitions").fetchone()["input_vars"] == []
    assert enqueue(conn, "w", {})


def test_run_at_far_ahead_or_infinite_failed_with_an_unclear_error(conn):
    # the delay of the first message overflowed int ("integer out of range") or the subtraction
    # failed ("cannot subtract infinite timestamps"), naming neither the workflow nor run_at
    define(conn, chain())
    for run_at in ("2100-01-01", "infinity", "-infinity"):
        with pytest.raises(errors.InvalidParameterValue, match="workflow chain: run_at must be a time at most"):
            conn.execute("select wf.enqueue('chain', run_at => %s::timestamptz)", (run_at,))
    assert counts(conn, "wf.runs") == {"wf.runs": 0}


def test_whole_number_written_with_a_fraction_was_rejected_with_22p02(conn):
    # int fields cast the JSON text straight to int, and '3.0'::int does not parse
    definition = chain(n=1, timeout_seconds=30.0, backoff={"base_seconds": 5.0, "factor": 2})
    definition["max_retries"] = 3.0
    assert define(conn, definition) == 1
    row = conn.execute("select max_attempts, timeout_seconds, backoff from wf.definition_steps").fetchone()
    assert (row["max_attempts"], row["timeout_seconds"], row["backoff"]["base_seconds"]) == (4, 30, 5)


def test_backoff_delays_written_with_a_fraction_broke_wf_fail(conn):
    # define accepted "delays": [5.0] and every later wf.fail raised 22P02 ('5.0'::int), so a
    # failing call could never be reported
    define(conn, chain(n=1, max_retries=2, backoff={"delays": [5.0, 7.0]}))
    run_id = enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    assert fail(conn, task)
    assert step_row(conn, run_id, "s1")["status"] == "retrying"
    assert 4 <= messages(conn, "echo")[0]["wait"] <= 5.5


@pytest.mark.parametrize("view", ["stage_health", "stuck"])
def test_stage_health_and_stuck_were_unreadable_by_wf_reader(conn, view):
    # views call their functions as the reader: stage_health called pgmq.metrics (no usage on
    # schema pgmq) and stuck called wf.setting, which reads the private wf.settings table
    define(conn, chain())
    enqueue(conn, "chain")
    with conn.transaction():
        conn.execute("set local role wf_reader")
        assert conn.execute(f"select count(*) as n from wf.{view}").fetchone()["n"] >= 0
    with conn.transaction():
        conn.execute("set local role wf_reader")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("select pgmq.send('wf_echo', '{}')")  # and pgmq stays out of reach


def test_wf_admin_could_not_create_an_enqueue_trigger(conn):
    # creating a trigger needs execute on its function, and wf_admin had none on wf.enqueue_trigger
    define(conn, chain())
    conn.execute("create table public.t (id int primary key)")
    conn.execute("alter table public.t owner to wf_admin")
    with conn.transaction():
        conn.execute("set local role wf_admin")
        conn.execute("""create trigger t after insert on public.t
                        for each row execute function wf.enqueue_trigger('chain')""")
    conn.execute("insert into public.t values (1)")
    assert counts(conn, "wf.runs") == {"wf.runs": 1}


def test_a_lost_attempt_was_restarted_after_its_run_had_failed(conn):
    # a step still running when a sibling died kept its attempt; once that attempt was lost,
    # claim started a new one and called the function again for a run that was already over
    define(conn, {"name": "pair", "steps": [
        {"name": "a", "function": "echo", "action": "go", "depends_on": []},
        {"name": "b", "function": "echo", "action": "go", "depends_on": [], "max_retries": 0}]})
    run_id = enqueue(conn, "pair")
    tasks = {t["step"]: t for t in claim(conn, "echo")}
    fail(conn, tasks["b"], retryable=False)
    assert run_status(conn, run_id) == "failed"
    make_visible(conn, "echo")
    assert claim(conn, "echo") == []
    assert step_row(conn, run_id, "a")["status"] == "cancelled"
    assert messages(conn, "echo") == []


def test_steps_cancelled_by_a_failure_kept_their_spent_budget_after_retry(conn):
    # wf.retry gave dead steps a fresh budget but not the steps the failure had cancelled
    define(conn, {"name": "pair2", "steps": [
        {"name": "a", "function": "echo", "action": "go", "depends_on": [], "max_retries": 1},
        {"name": "b", "function": "echo", "action": "go", "depends_on": [], "max_retries": 0}]})
    run_id = enqueue(conn, "pair2")
    tasks = {t["step"]: t for t in claim(conn, "echo")}
    fail(conn, tasks["a"])  # a retries: one attempt of two spent
    fail(conn, tasks["b"], retryable=False)  # b dies, a is cancelled
    assert step_row(conn, run_id, "a")["status"] == "cancelled"
    assert conn.execute("select wf.retry(%s) as ok", (run_id,)).fetchone()["ok"]
    assert step_row(conn, run_id, "a")["attempt_base"] == step_row(conn, run_id, "a")["attempt"]


def test_batched_hot_path_scanned_whole_tables_when_they_were_small(conn):
    # the batched claim/complete/advance keep one generic plan per session; planned while the
    # tables were small it read wf.steps and wf.runs by sequential scan, which made a bulk
    # enqueue in one transaction quadratic. The hot path must go by key whatever the statistics.
    define(conn, chain(n=2))
    # define's own look-ups of the tiny stages table must not count: flush this session's pending stats
    conn.execute("select pg_stat_force_next_flush()")
    with conn.transaction():
        conn.execute("select wf.enqueue('chain', jsonb_build_object('i', i)) from generate_series(1, 200) i")
        tasks = claim(conn, "echo", 1000)
        assert complete_batch(conn, tasks, [{} for _ in tasks]) == 200
        scans = conn.execute(
            """select relname, seq_scan from pg_stat_xact_user_tables
               where schemaname = 'wf' and relname in ('runs', 'steps', 'definition_steps', 'stages')""").fetchall()
    assert {r["relname"]: r["seq_scan"] for r in scans} == {
        "runs": 0, "steps": 0, "definition_steps": 0, "stages": 0}


def test_bug_an_output_template_of_null_made_the_runs_output_null(conn):
    define(conn, {"name": "w", "output_template": None, "steps": [{"name": "a", "function": "echo", "action": "go"}]})
    run_id = enqueue(conn, "w")
    [task] = claim(conn, "echo")
    conn.execute("select wf.complete(%s, %s, %s, '{\"id\": 7}')", (task["run_id"], task["step"], task["attempt"]))
    assert conn.execute("select output from wf.runs where id = %s", (run_id,)).fetchone()["output"] == {
        "a": {"id": 7}}


def test_bug_a_rendered_output_value_that_looked_like_a_template_was_rendered_again(conn):
    define(conn, {"name": "w", "output_template": {"text": "{{ note }} / {{ secret }}"},
                  "steps": [{"name": "a", "function": "echo", "action": "go"}]})
    run_id = enqueue(conn, "w", {"note": "{{ secret }}", "secret": "s3"})
    [task] = claim(conn, "echo")
    conn.execute("select wf.complete(%s, %s, %s, '{}')", (task["run_id"], task["step"], task["attempt"]))
    assert conn.execute("select output from wf.runs where id = %s", (run_id,)).fetchone()["output"] == {
        "text": "{{ secret }} / s3"}


@pytest.mark.parametrize("key", [{"when": "{{ amount > 100 }}"}, {"not_before": "{{ at }}"}])
def test_bug_when_and_not_before_on_a_wait_for_step_were_silently_ignored(conn, key):
    with pytest.raises(errors.InvalidParameterValue, match="step approve: a wait_for step takes no"):
        define(conn, {"name": "w", "steps": [{"name": "approve", "wait_for": {"signal": "ok"}, **key}]})
