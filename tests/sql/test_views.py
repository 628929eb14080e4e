"""The psql dashboard: the views of README "Views", their columns, comments and contents."""

from __future__ import annotations

import pytest
from psycopg import errors
from wfsql import age_messages, chain, claim, complete, define, diamond, enqueue, fail, make_visible

# README "Views": the columns each view documents (runs_overview and step_timeline exactly; the
# others at least these)
DOCUMENTED = {
    "runs_overview": ["run_id", "workflow", "version", "status", "progress", "current_steps", "attempts",
                      "last_error", "failed_step", "correlation_id", "created_at", "started_at",
                      "finished_at", "duration", "parent_run_id", "output"],
    "step_timeline": ["run_id", "step", "attempt", "status", "queued_at", "started_at", "finished_at",
                      "duration", "http_status", "error"],
    "stage_health": ["queue", "depth", "oldest_age", "in_flight", "succeeded_5m", "failed_5m",
                     "succeeded_1h", "failed_1h", "p50_ms", "p95_ms", "dead_letters"],
    "failures": ["run_id", "workflow", "step", "status", "attempt", "http_status", "error"],
    "stuck": ["run_id", "workflow", "step", "status", "since", "age"],
    "dead_letters": ["run_id", "workflow", "step", "attempt", "error", "dlq_msg_id"],
    "workflow_stats": ["workflow", "version", "runs", "completion_rate", "failure_rate", "mean_duration",
                       "p95_duration"],
    "run_history": ["run_id", "seq", "at", "step", "attempt", "kind", "detail"],
    "workflow_versions": ["workflow", "version", "current", "active", "created_at", "steps", "definition"],
    "alerts": ["key", "kind", "subject", "value", "threshold", "since", "message", "detail"],
}
EXACT = {"runs_overview", "step_timeline"}
# views for apps rather than the psql dashboard: tested in tests/supabase/test_rls.py
APP_VIEWS = {"my_runs"}
# views the web dashboard reads: tested in tests/sql/test_dashboard_sql.py
DASHBOARD_VIEWS = {"run_inputs", "run_steps", "stage_series"}


def columns(conn, view: str) -> list[str]:
    cur = conn.execute(f"select * from wf.{view} limit 0")
    return [d.name for d in cur.description]


@pytest.mark.parametrize("view", DOCUMENTED)
def test_view_has_the_documented_columns(shared_conn, view):
    got = columns(shared_conn, view)
    if view in EXACT:
        assert got == DOCUMENTED[view]
    else:
        assert set(DOCUMENTED[view]) <= set(got), set(DOCUMENTED[view]) - set(got)


@pytest.mark.parametrize("view", DOCUMENTED)
def test_view_has_a_comment_saying_what_it_is_for(shared_conn, view):
    row = shared_conn.execute("select obj_description(%s::regclass, 'pg_class') as c", (f"wf.{view}",)).fetchone()
    assert row["c"] and len(row["c"]) > 20


@pytest.mark.parametrize("view", DOCUMENTED)
def test_view_is_readable_by_wf_reader(conn, view):
    define(conn, chain(n=1, max_retries=0))
    enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    fail(conn, task)
    queued = enqueue(conn, "chain")
    conn.execute("update wf.steps set queued_at = now() - interval '1 hour' where status = 'queued'")
    age_messages(conn, queued, "1 hour")
    with conn.transaction():
        conn.execute("set local role wf_reader")
        assert conn.execute(f"select * from wf.{view}").fetchall()


@pytest.mark.parametrize("view", DOCUMENTED)
def test_view_is_not_readable_by_wf_worker(shared_conn, view):
    with shared_conn.transaction(), pytest.raises(errors.InsufficientPrivilege):
        shared_conn.execute("set local role wf_worker")
        shared_conn.execute(f"select * from wf.{view}")


def test_every_view_in_the_schema_is_documented(shared_conn):
    rows = shared_conn.execute("select viewname from pg_views where schemaname = 'wf' order by 1").fetchall()
    assert {r["viewname"] for r in rows} == set(DOCUMENTED) | APP_VIEWS | DASHBOARD_VIEWS


def overview(conn, run_id: str) -> dict:
    return conn.execute("select * from wf.runs_overview where run_id = %s", (run_id,)).fetchone()


def test_runs_overview_shows_progress_and_current_steps(conn):
    define(conn, chain(n=2))
    run_id = enqueue(conn, "chain", correlation_id="c-1")
    [s1] = claim(conn, "echo")
    complete(conn, s1)
    row = overview(conn, run_id)
    assert (row["status"], row["progress"], row["current_steps"]) == ("running", "1/2", "s2 (queued)")
    assert (row["attempts"], row["correlation_id"], row["last_error"]) == (1, "c-1", None)


def test_runs_overview_shows_the_error_and_failed_step_of_a_failed_run(conn):
    define(conn, chain(n=2, max_retries=0))
    run_id = enqueue(conn, "chain")
    [s1] = claim(conn, "echo")
    complete(conn, s1)
    [s2] = claim(conn, "echo")
    fail(conn, s2, "HTTP 500 from echo", http_status=500)
    row = overview(conn, run_id)
    assert (row["status"], row["progress"]) == ("failed", "1/2")
    assert (row["last_error"], row["failed_step"]) == ("HTTP 500 from echo", "s2")
    assert row["finished_at"] is not None and row["duration"] is not None


def test_runs_overview_shows_the_last_error_of_a_retrying_step(conn):
    define(conn, chain(n=1, max_retries=2))
    run_id = enqueue(conn, "chain")
    [s1] = claim(conn, "echo")
    fail(conn, s1, "timeout")
    row = overview(conn, run_id)
    assert (row["status"], row["last_error"], row["failed_step"]) == ("running", "timeout", "s1")


def test_step_timeline_has_one_row_per_attempt(conn):
    define(conn, chain(n=1, max_retries=2))
    run_id = enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    fail(conn, task, "upstream 503", http_status=503)
    make_visible(conn, "echo")
    [task] = claim(conn, "echo")  # attempt 2 is lost
    make_visible(conn, "echo")
    [task] = claim(conn, "echo")
    complete(conn, task)
    rows = conn.execute(
        "select * from wf.step_timeline where run_id = %s order by attempt", (run_id,)).fetchall()
    assert [(r["step"], r["attempt"], r["status"], r["http_status"], r["error"]) for r in rows] == [
        ("s1", 1, "retrying", 503, "upstream 503"),
        ("s1", 2, "lost", None, None),
        ("s1", 3, "succeeded", None, None),
    ]
    assert all(r["queued_at"] is not None for r in rows)
    assert rows[0]["started_at"] >= rows[0]["queued_at"]
    assert rows[2]["duration"] is not None


def test_stuck_lists_a_step_queued_longer_than_the_setting(conn):
    define(conn, chain(n=1))
    old = enqueue(conn, "chain")
    fresh = enqueue(conn, "chain")
    conn.execute("update wf.steps set queued_at = now() - interval '16 minutes' where run_id = %s", (old,))
    age_messages(conn, old, "16 minutes")
    rows = conn.execute("select run_id::text, step, status from wf.stuck").fetchall()
    assert rows == [{"run_id": old, "step": "s1", "status": "queued"}]
    assert fresh not in [r["run_id"] for r in rows]


def test_stuck_follows_the_stuck_after_seconds_setting(conn):
    define(conn, chain(n=1))
    run_id = enqueue(conn, "chain")
    conn.execute("update wf.steps set queued_at = now() - interval '2 minutes' where run_id = %s", (run_id,))
    age_messages(conn, run_id, "2 minutes")
    assert conn.execute("select count(*) as n from wf.stuck").fetchone()["n"] == 0
    conn.execute("update wf.settings set value = '60' where key = 'stuck_after_seconds'")
    assert conn.execute("select count(*) as n from wf.stuck").fetchone()["n"] == 1


def test_stuck_lists_a_step_running_past_its_lease(conn):
    define(conn, chain(n=1))
    run_id = enqueue(conn, "chain")
    claim(conn, "echo")
    conn.execute("update wf.steps set lease_until = now() - interval '5 minutes' where run_id = %s", (run_id,))
    age_messages(conn, run_id, "6 minutes")
    [row] = conn.execute("select run_id::text, status, reason from wf.stuck").fetchall()
    assert (row["run_id"], row["status"]) == (run_id, "running")
    assert "lease" in row["reason"]


def test_dead_letters_and_failures_list_a_dead_step(conn):
    define(conn, chain(n=1, max_retries=0))
    run_id = enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    fail(conn, task, "gone", http_status=410)
    [dead] = conn.execute("select * from wf.dead_letters").fetchall()
    assert (str(dead["run_id"]), dead["step"], dead["error"], dead["http_status"]) == (run_id, "s1", "gone", 410)
    dlq_id = conn.execute("select msg_id from pgmq.q_wf_dlq").fetchone()["msg_id"]
    assert dead["dlq_msg_id"] == dlq_id
    [failure] = conn.execute("select * from wf.failures").fetchall()
    assert (failure["step"], failure["status"], failure["error"]) == ("s1", "dead", "gone")


def test_stage_health_counts_depth_in_flight_outcomes_and_dead_letters(conn):
    define(conn, diamond(max_retries=0))
    for _ in range(3):
        enqueue(conn, "diamond")
    a1, a2, _a3 = claim(conn, "echo", 3)
    complete(conn, a1)
    fail(conn, a2, "no")
    # a3 stays in flight; a1's run queued b and c
    [row] = conn.execute("select * from wf.stage_health where stage = 'echo'").fetchall()
    assert (row["queue"], row["depth"], row["in_flight"], row["dead_letters"]) == ("wf_echo", 3, 1, 1)
    assert (row["succeeded_5m"], row["failed_5m"], row["succeeded_1h"], row["failed_1h"]) == (1, 1, 1, 1)
    assert row["p50_ms"] is not None


def test_workflow_stats_counts_runs_per_version(conn):
    define(conn, chain(n=1, max_retries=0))
    for _ in range(2):
        enqueue(conn, "chain")
    ok, bad = claim(conn, "echo")
    complete(conn, ok)
    fail(conn, bad)
    define(conn, chain(n=2))
    enqueue(conn, "chain")
    rows = conn.execute("select * from wf.workflow_stats where workflow = 'chain' order by version").fetchall()
    assert [(r["version"], r["runs"], r["completed"], r["failed"], r["open"]) for r in rows] == [
        (1, 2, 1, 1, 0), (2, 1, 0, 0, 1)]
    assert (float(rows[0]["completion_rate"]), float(rows[0]["failure_rate"])) == (0.5, 0.5)
    assert rows[0]["mean_duration"] is not None and rows[0]["p95_duration"] is not None
