"""Pause and resume with the real worker and the real echo function: a paused run's next step is not
called while it is paused and is called once after resume; a paused stage is not called at all, its
queue keeps its depth, and after resume every message is called exactly once."""

from __future__ import annotations

from collections import Counter

from wfproc import wait_final
from wfsql import chain, define, enqueue, step_statuses


def depth(conn, stage: str) -> int:
    return conn.execute("select depth from wf.stage_health where stage = %s", (stage,)).fetchone()["depth"]


def test_a_paused_runs_next_step_is_not_called_until_resume(db, conn, gateway, start_worker):
    define(conn, chain("paused-chain", n=2))
    run_id = enqueue(conn, "paused-chain")
    conn.execute("select wf.pause(%s)", (run_id,))
    worker = start_worker(db)
    worker.wait_started()
    # another run goes through meanwhile: the worker is serving the stage
    other = enqueue(conn, "paused-chain")
    assert wait_final(conn, other, 15, worker) == {other: "completed"}
    assert gateway.calls("echo", run_id) == []
    assert step_statuses(conn, run_id) == {"s1": "waiting", "s2": "waiting"}

    conn.execute("select wf.resume(%s)", (run_id,))
    assert wait_final(conn, run_id, 15, worker) == {run_id: "completed"}
    assert sorted(c["headers"]["x-wf-step"] for c in gateway.calls("echo", run_id)) == ["s1", "s2"]


def test_a_paused_stage_keeps_its_messages_and_calls_each_once_after_resume(db, conn, gateway, start_worker):
    define(conn, chain("stage-paused", n=1))
    conn.execute("select wf.pause_stage('echo')")
    runs = [str(r["id"]) for r in conn.execute(
        "select wf.enqueue('stage-paused', jsonb_build_object('i', i)) as id from generate_series(1, 300) i")]
    define(conn, chain("elsewhere", n=3, function="noop"))
    worker = start_worker(db)
    probe = enqueue(conn, "stage-paused")  # its NOTIFY wakes the worker while the stage is paused
    # the worker goes round its loop (it claims from every ready stage each time) for another stage
    elsewhere = enqueue(conn, "elsewhere")
    assert wait_final(conn, elsewhere, 15, worker) == {elsewhere: "completed"}
    assert depth(conn, "echo") == 301
    assert all(not gateway.calls("echo", r) for r in (*runs[:5], probe))

    conn.execute("select wf.resume_stage('echo')")
    statuses = wait_final(conn, [*runs, probe], 60, worker)
    assert set(statuses.values()) == {"completed"}
    calls = Counter(c["headers"]["x-wf-run"] for c in gateway.calls("echo") if c["headers"]["x-wf-run"] in statuses)
    assert len(calls) == 301 and set(calls.values()) == {1}
    assert depth(conn, "echo") == 0
