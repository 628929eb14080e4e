"""wf.tick, the minute job: promotes due scheduled runs, dead-letters poison steps, marks stuck
steps once, deletes finished runs past retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wfsql import (
    age_messages,
    chain,
    claim,
    complete,
    define,
    dlq,
    enqueue,
    event_kinds,
    events,
    make_visible,
    messages,
    run_status,
    step_row,
    step_statuses,
)


def test_tick_dead_letters_a_running_step_whose_lease_expired_with_no_attempts_left(conn):
    define(conn, chain(max_retries=0))
    run_id = enqueue(conn, "chain")
    claim(conn, "echo")
    # simulate time: the lease is over, so the message is due again (its vt is the lease's end)
    conn.execute("update wf.steps set lease_until = now() - interval '1 second' where run_id = %s", (run_id,))
    make_visible(conn, "echo")
    assert conn.execute("select wf.tick() as r").fetchone()["r"]["dead_lettered"] == 1
    assert step_statuses(conn, run_id) == {"s1": "dead", "s2": "cancelled", "s3": "cancelled"}
    assert run_status(conn, run_id) == "failed"
    assert messages(conn, "echo") == []
    assert [d["message"]["step"] for d in dlq(conn)] == ["s1"]
    assert ("attempt_lost", 1) in event_kinds(conn, run_id, "s1")


def test_tick_leaves_a_running_step_with_attempts_left_for_the_claim(conn):
    define(conn, chain(max_retries=1))
    run_id = enqueue(conn, "chain")
    claim(conn, "echo")
    conn.execute("update wf.steps set lease_until = now() - interval '1 second' where run_id = %s", (run_id,))
    make_visible(conn, "echo")
    assert conn.execute("select wf.tick() as r").fetchone()["r"]["dead_lettered"] == 0
    assert step_row(conn, run_id, "s1")["status"] == "running"


def test_tick_leaves_a_running_step_within_its_lease(conn):
    define(conn, chain(max_retries=0))
    run_id = enqueue(conn, "chain")
    claim(conn, "echo")
    assert conn.execute("select wf.tick() as r").fetchone()["r"]["dead_lettered"] == 0
    assert step_row(conn, run_id, "s1")["status"] == "running"


def test_tick_promotes_a_due_scheduled_run(conn):
    define(conn, chain())
    due = enqueue(conn, "chain", run_at=datetime.now(UTC) + timedelta(hours=1))
    later = enqueue(conn, "chain", run_at=datetime.now(UTC) + timedelta(hours=2))
    conn.execute("update wf.runs set run_at = run_at - interval '1 hour' where id = %s", (due,))
    result = conn.execute("select wf.tick() as r").fetchone()["r"]
    assert result["promoted"] == 1
    assert (run_status(conn, due), run_status(conn, later)) == ("pending", "scheduled")
    assert ("run_due", None) in event_kinds(conn, due)


def test_tick_deletes_finished_runs_past_retention_with_their_history(conn):
    define(conn, chain(n=1))
    old, recent, still_open = (enqueue(conn, "chain") for _ in range(3))
    for task in claim(conn, "echo", 3):
        if str(task["run_id"]) != still_open:
            complete(conn, task)
    conn.execute("update wf.runs set created_at = now() - interval '31 days 1 minute', "
                 "finished_at = now() - interval '31 days' where id = %s", (old,))
    conn.execute("update wf.runs set created_at = now() - interval '90 days' where id = %s", (still_open,))

    assert conn.execute("select wf.tick() as r").fetchone()["r"]["deleted_runs"] == 1
    left = conn.execute("select id::text from wf.runs order by id").fetchall()
    assert sorted(r["id"] for r in left) == sorted([recent, still_open])
    assert step_statuses(conn, old) == {}
    assert events(conn, old) == []
    assert events(conn, recent) != []


def test_tick_marks_stuck_steps_once(conn):
    define(conn, chain(n=1))
    run_id = enqueue(conn, "chain")
    conn.execute("update wf.steps set queued_at = now() - interval '16 minutes' where run_id = %s", (run_id,))
    age_messages(conn, run_id, "16 minutes")
    assert conn.execute("select wf.tick() as r").fetchone()["r"]["stuck"] == 1
    assert conn.execute("select wf.tick() as r").fetchone()["r"]["stuck"] == 0
