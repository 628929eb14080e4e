"""scripts/demo --once, as a new user runs it: everything starts, every use case runs, a child run shows in
wf.run_tree, a run waits for a signal and completes after wf signal, a reminder waits for its not_before,
the failing run lands in the DLQ, raises an alert (wf.alerts) that the alert workflow posts, and completes
after wf retry, a run whose stage is paused waits for it and completes after wf stage resume without a
failed attempt, a declined booking is undone by its compensations
(release, then refund), a burst of 20 edits to one listing becomes one sync with the last edit (debounce) and
a second sync of a record waits for the first (a concurrency key), a run with priority 10 overtakes a backlog
of 30 ordinary runs waiting in a paused stage, the views are shown."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from wfsql import REPO

USE_CASES = ["proposal-created", "user-signup", "virtual-meeting-accepted", "order-fulfilment",
             "notify-with-fallback", "listing-approval", "proposal-status-change"]


def run_demo(env: dict[str, str]) -> str:
    result = subprocess.run([str(REPO / "scripts/demo"), "--once"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def demo_output() -> str:
    """The demo on a PostgreSQL of its own, as on a fresh machine."""
    env = {k: v for k, v in os.environ.items() if k not in ("WF_DATABASE_URL", "DATABASE_URL")}
    return run_demo(env)


@pytest.mark.parametrize("workflow", USE_CASES)
def test_demo_runs_each_use_case_to_completion(demo_output, workflow):
    assert re.search(rf"^\s+{re.escape(workflow)}\s+completed\s+(\d+)/\1\b", demo_output, re.M), demo_output


def part(output: str, title: str, next_title: str) -> str:
    """The demo's output from the heading `== title` to the heading `== next_title`."""
    start = output.index(f"== {title}")
    return output[start:output.index(f"== {next_title}", start)]


def test_demo_shows_a_failed_run_in_the_dlq_then_completes_it_after_wf_retry(demo_output):
    failure = part(demo_output, "a failure", "pausing a stage")
    assert re.search(r"listing-published\s+failed\s+\d+/6", failure)
    assert "Bubble rejected the API key" in failure
    assert re.search(r"run [0-9a-f-]{36} resumed", failure)
    assert re.search(r"listing-published\s+completed\s+6/6", failure)


def test_demo_the_dlq_case_raises_an_alert_that_the_alert_workflow_posts(demo_output):
    alert = part(demo_output, "an alert", "fix the cause")
    message = r"stage bubble-sync: 1 step\(s\) dead-lettered in the last hour"
    # the view's row (key | value | threshold | message), then the alert workflow's post
    assert re.search(rf"dlq_growth:bubble-sync\s+\|\s+1\s+\|\s+0\s+\|\s+{message}", alert), alert
    assert re.search(rf"messages\.send_message\s+{message}", alert), alert


def test_demo_pauses_the_bubble_sync_stage_and_the_run_completes_after_resume_without_a_failed_attempt(demo_output):
    paused = part(demo_output, "pausing a stage", "a saga")
    before, after = paused.split("stage bubble-sync resumed")
    assert "stage bubble-sync paused" in before
    # the rest of the run went on; its sync waits in the paused stage's queue
    assert re.search(r"listing-published\s+running\s+4/6", before)
    assert "now: sync_bubble (queued)" in before
    assert re.search(r"^\s+bubble-sync \| t\s+\|\s+[1-9]\d* \|", before, re.M), before
    assert re.search(r"listing-published\s+completed\s+6/6", after)
    # one distribution call per channel of its input (a map step)
    assert "0 failed attempts, 3 distribution calls" in after


def test_demo_shows_a_declined_booking_undone_by_its_compensations_last_one_first(demo_output):
    saga = part(demo_output, "a saga", "debounce")
    assert re.search(r"run [0-9a-f-]{36}  booking-payment v1  failed  3/4", saga), saga
    assert "last error (confirm): HTTP 400: declined: the host declined the booking" in saga
    calls = re.findall(r"^\s+(\w+(?::compensate)?)\s+([a-z-]+\.[a-z_]+)\s+\{", saga, re.M)
    assert calls == [("charge", "payments.charge"), ("reserve", "proposal.reserve"), ("notify", "send-email.send"),
                     ("reserve:compensate", "proposal.release"), ("charge:compensate", "payments.refund")], saga
    # the refund names the charge the run made (the id the guest's email carried too)
    [charged] = re.findall(r'"charge_id": "(ch_[0-9a-f]{16})"', saga)
    [refunded] = re.findall(r'"chargeId": "(ch_[0-9a-f]{16})"', saga)
    assert refunded == charged


def test_demo_shows_a_burst_of_20_edits_to_one_listing_become_one_sync_with_the_last_edit(demo_output):
    burst = part(demo_output, "debounce", "a concurrency key")
    assert re.search(r"^\s+20 enqueues returned 1 run id: [0-9a-f-]{36}$", burst, re.M), burst
    assert "19 run_debounced events" in burst
    assert re.search(r"external-sync\s+completed\s+2/2", burst)
    syncs = re.findall(r"^\s+sync\s+bubble-sync\.sync_single\s+(\{.*\})$", burst, re.M)
    assert len(syncs) == 1, burst
    assert json.loads(syncs[0]) == {"table": "listing", "recordId": "l-77", "operation": "UPDATE",
                                    "fields": {"edit": 20}}


def test_demo_shows_a_second_sync_of_a_record_waiting_for_the_first_by_its_concurrency_key(demo_output):
    keyed = part(demo_output, "a concurrency key", "scheduling")
    before, after = keyed.split("stage analytics resumed")
    assert "stage analytics paused" in before
    assert re.search(r"run [0-9a-f-]{36}  external-sync v1  scheduled  0/2", before), before
    assert 'now: waiting for concurrency key record_id="l-78"' in before
    assert len(re.findall(r"external-sync\s+completed\s+2/2", after)) == 2, after
    assert "the second started after the first had ended" in after


def test_demo_shows_a_priority_run_overtaking_a_backlog_of_30_in_a_paused_stage(demo_output):
    priorities = part(demo_output, "priorities", "scheduling")
    before, after = priorities.split("stage messages resumed")
    assert "stage messages paused" in before
    assert "stage messages: max_concurrency=1" in before
    # 30 ordinary first steps in the stage's queue and the priority run's in its high band
    assert re.search(r"^\s+messages \| t\s+\|\s+31$", before, re.M), before
    assert "stage messages: no limits" in after
    assert re.search(r"^\s+proposal-created\s+completed\s+2/2\b", after, re.M), after
    # the priority run's call came first, then the backlog's in the order they were queued
    assert "create_thread calls, in order (demo.outbox): p-vip p-301 p-302 p-303 … p-330 (31 calls)" in after, after
    assert "the priority run ended at place 1 of the 31, the backlog's first run at place 2" in after, after


def test_demo_shows_the_child_run_of_user_signup_in_wf_run_tree(demo_output):
    assert re.search(r"select \* from wf\.run_tree\('[0-9a-f-]{36}'\);", demo_output)
    assert re.search(r"\|\s+0 \| user-signup\s+\| completed", demo_output)
    assert re.search(r"\| sync_signup\s+\|\s+1 \| signup-sync\s+\| completed", demo_output)


def test_demo_shows_a_run_waiting_for_a_signal_then_completing_after_wf_signal(demo_output):
    assert re.search(r"listing-approval v1\s+running\s+0/5", demo_output)
    assert 'now: review: waiting for signal "moderated"' in demo_output
    assert re.search(r"signal moderated sent to run [0-9a-f-]{36}", demo_output)
    assert re.search(r"listing-approval\s+completed\s+5/5", demo_output)


def test_demo_shows_the_sql_step_of_proposal_status_change_stamping_the_proposal(demo_output):
    assert re.search(r"demo\.proposal p-200: status accepted, accepted_at \d{4}-\d\d-\d\d", demo_output)


def test_demo_shows_a_reminder_deferred_until_24_hours_before_the_meeting(demo_output):
    assert re.search(r"meeting in 3 days: reminder: not before \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", demo_output)


def test_demo_schedules_a_recurring_run_with_pg_cron(demo_output):
    assert "wf:nightly-listing-sync | 0 3 * * * | select wf.fire_schedule('nightly-listing-sync')" in demo_output
    assert "wf-tick | * * * * * | select wf.tick()" in demo_output


def test_demo_prints_the_views_and_how_to_connect(demo_output):
    assert "== wf.runs_overview" in demo_output and "== wf.stage_health" in demo_output
    assert re.search(r'psql "postgresql://postgres@127\.0\.0\.1:\d+/postgres"', demo_output)
    assert "select * from wf.stage_health;" in demo_output
    assert re.search(r"demo\.outbox\): \d+ calls recorded", demo_output)


def test_demo_uses_the_database_in_wf_database_url(db):
    output = run_demo({**os.environ, "WF_DATABASE_URL": db})
    assert "using the database in WF_DATABASE_URL" in output
    assert "starting PostgreSQL" not in output
    assert "recurring runs need pg_cron" in output  # a cloned test database has no pg_cron
    assert re.search(r"listing-published\s+completed\s+6/6", output)
