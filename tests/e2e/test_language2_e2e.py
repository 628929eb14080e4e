"""The workflow language, part 2, with the real worker and the real Deno functions (DESIGN §10): a child
workflow whose output becomes its parent step's, a wait for a signal that times out into a fallback, and
not_before rendered by the worker. Time is simulated by back-dating rows and messages, never by sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from wfproc import wait_final, wait_until
from wfsql import define, enqueue, make_visible, step_row


def child_and_parent(conn) -> None:
    define(conn, {"name": "sync-records", "steps": [
        {"name": "profile", "function": "echo", "action": "sync", "payload_template": {"user": "{{ user_id }}"}}],
        "output_template": {"synced": "{{ steps.profile.output.payload.user }}"}})
    define(conn, {"name": "signup", "steps": [
        {"name": "sync", "workflow": "sync-records", "input_template": {"user_id": "{{ user_id }}"}},
        {"name": "welcome", "function": "echo", "action": "mail",
         "payload_template": {"synced": "{{ steps.sync.output.synced }}"}}]})


def test_a_child_workflows_output_becomes_its_parent_steps_output(db, conn, start_worker):
    child_and_parent(conn)
    run_id = enqueue(conn, "signup", {"user_id": "u-1"}, correlation_id="signup-u-1")
    worker = start_worker(db)
    assert wait_final(conn, run_id, 20, worker) == {run_id: "completed"}

    tree = conn.execute("select * from wf.run_tree(%s)", (run_id,)).fetchall()
    assert [(str(r["run_id"]) == run_id, r["depth"], r["workflow"], r["status"]) for r in tree] == [
        (True, 0, "signup", "completed"), (False, 1, "sync-records", "completed")]
    child = conn.execute("select * from wf.runs where id = %s", (tree[1]["run_id"],)).fetchone()
    assert (str(child["parent_run_id"]), child["parent_step"], child["correlation_id"]) == (
        run_id, "sync", "signup-u-1")
    assert step_row(conn, run_id, "sync")["output"] == {"synced": "u-1"}
    assert step_row(conn, run_id, "welcome")["output"]["payload"] == {"synced": "u-1"}


def test_a_wait_that_times_out_fails_its_step_and_the_fallback_runs(db, conn, start_worker):
    define(conn, {"name": "listing-approval", "steps": [
        {"name": "approve", "wait_for": {"signal": "approved", "timeout_seconds": 86400}, "on_failure": "continue"},
        {"name": "auto_reject", "function": "echo", "action": "reject",
         "when": "{{ steps.approve.status == 'failed' }}"}]})
    run_id = enqueue(conn, "listing-approval")
    worker = start_worker(db)
    wait_until(lambda: step_row(conn, run_id, "approve")["status"] == "running", 10, "the wait to start", worker.tail)
    assert step_row(conn, run_id, "approve")["lease_until"] is None  # no lease, no worker slot

    # a day passes: the timer message and wake_at are back-dated; the worker's next poll fires it
    conn.execute("update wf.steps set wake_at = now() - interval '1 second' where run_id = %s", (run_id,))
    make_visible(conn, "_wf")
    assert wait_final(conn, run_id, 10, worker) == {run_id: "completed"}
    approve = step_row(conn, run_id, "approve")
    assert (approve["status"], approve["error"]) == ("failed", 'no signal "approved" within 86400 seconds')
    assert step_row(conn, run_id, "auto_reject")["status"] == "succeeded"


def reminder(conn) -> None:
    define(conn, {"name": "meeting-reminder", "steps": [
        {"name": "remind", "function": "echo", "action": "remind", "not_before": "{{ meeting_at }}",
         "offset_seconds": -86400, "payload_template": {"at": "{{ meeting_at }}"}}]})


def test_not_before_in_the_future_waits_without_using_an_attempt(db, conn, start_worker):
    reminder(conn)
    meeting = datetime.now(UTC) + timedelta(days=3)
    run_id = enqueue(conn, "meeting-reminder", {"meeting_at": meeting.isoformat()})
    worker = start_worker(db)
    wait_until(lambda: conn.execute("select 1 from wf.events where run_id = %s and kind = 'deferred'",
                                    (run_id,)).fetchall(), 10, "the step to be deferred", worker.tail)
    step = step_row(conn, run_id, "remind")
    assert (step["status"], step["attempt"]) == ("queued", 0)
    assert abs((step["queued_at"] - (meeting - timedelta(days=1))).total_seconds()) < 2
    overview = conn.execute("select current_steps from wf.runs_overview where run_id = %s", (run_id,)).fetchone()
    assert overview["current_steps"].startswith("remind: not before ")

    # two days pass: the meeting is now less than a day away
    conn.execute("update wf.runs set input = jsonb_set(input, '{meeting_at}', to_jsonb(%s::text)) where id = %s",
                 ((datetime.now(UTC) + timedelta(hours=20)).isoformat(), run_id))
    make_visible(conn, "echo")
    assert wait_final(conn, run_id, 10, worker) == {run_id: "completed"}
    assert (step_row(conn, run_id, "remind")["attempt"]) == 1


def test_not_before_in_the_past_starts_at_once(db, conn, start_worker):
    reminder(conn)
    run_id = enqueue(conn, "meeting-reminder", {"meeting_at": "2026-01-01T09:00:00Z"})
    worker = start_worker(db)
    assert wait_final(conn, run_id, 10, worker) == {run_id: "completed"}
    assert step_row(conn, run_id, "remind")["attempt"] == 1
    assert not conn.execute("select 1 from wf.events where kind = 'deferred'").fetchall()


def test_not_before_that_is_not_a_timestamp_fails_the_step_without_retry_naming_the_value(db, conn, start_worker):
    reminder(conn)
    run_id = enqueue(conn, "meeting-reminder", {"meeting_at": "next tuesday"})
    worker = start_worker(db)
    assert wait_final(conn, run_id, 10, worker) == {run_id: "failed"}
    step = step_row(conn, run_id, "remind")
    assert step["attempt"] == 1
    assert "step remind: not_before: rendered 'next tuesday', not an ISO-8601 timestamp" in step["error"]
