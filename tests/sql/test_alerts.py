"""wf.alerts (stuck steps, queue depth, failure rate, slow calls, DLQ growth over the thresholds in
wf.settings), wf.raise_alerts (wf.tick starts the alert workflow once per alert and hour; a missing one
is reported, not raised) and wf.check_setting (a setting out of range is refused with 22023 naming it)."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from wfsql import chain, claim, complete, define, enqueue, fail

ALERT_WORKFLOW = {
    "name": "alerts-to-slack",
    "steps": [{"name": "post", "function": "slack", "action": "post",
               "payload_template": {"text": "{{ message }}", "key": "{{ key }}"}}],
}


def setting(conn, key: str, value) -> None:
    conn.execute("update wf.settings set value = %s where key = %s", (Jsonb(value), key))


def alerts(conn, kind: str | None = None) -> list[dict]:
    rows = conn.execute("select * from wf.alerts").fetchall()
    return [r for r in rows if kind is None or r["kind"] == kind]


def tick_alerts(conn) -> dict:
    return conn.execute("select wf.tick() as r").fetchone()["r"]["alerts"]


def alert_runs(conn) -> list[dict]:
    return conn.execute(
        "select id, input, idempotency_key, correlation_id from wf.runs where workflow = 'alerts-to-slack'"
    ).fetchall()


def stuck_queue(conn, runs: int = 1) -> list[str]:
    """runs of a one-step chain whose step has waited in its queue for 20 minutes (stuck after 15)."""
    define(conn, chain(n=1))
    ids = [enqueue(conn, "chain") for _ in range(runs)]
    back_date_queue(conn)
    return ids


def back_date_queue(conn) -> None:
    """the echo stage's queued steps and their messages as if queued 20 minutes ago."""
    conn.execute("update wf.steps set queued_at = now() - interval '20 minutes' where function = 'echo'")
    conn.execute("update pgmq.q_wf_echo set enqueued_at = now() - interval '20 minutes', "
                 "vt = now() - interval '20 minutes'")


# ---- each kind: over its threshold and not under ---------------------------------------------


def test_no_alert_on_a_quiet_database(conn):
    define(conn, chain(n=1))
    enqueue(conn, "chain")
    assert alerts(conn) == []


def test_a_step_queued_past_stuck_after_seconds_raises_a_stuck_alert_for_its_stage(conn):
    run_ids = stuck_queue(conn, runs=2)
    [alert] = alerts(conn)
    assert (alert["key"], alert["kind"], alert["subject"], alert["value"], alert["threshold"]) == (
        "stuck:echo", "stuck", "echo", 2, 0)
    assert "2 step(s) stuck" in alert["message"] and "no consumer" in alert["message"]
    assert sorted(alert["detail"]["runs"]) == sorted(run_ids)
    assert alert["since"] is not None


def test_a_step_queued_under_stuck_after_seconds_raises_no_alert(conn):
    define(conn, chain(n=1))
    enqueue(conn, "chain")
    conn.execute("update wf.steps set queued_at = now() - interval '14 minutes'")
    conn.execute("update pgmq.q_wf_echo set enqueued_at = now() - interval '14 minutes', "
                 "vt = now() - interval '14 minutes'")
    assert alerts(conn, "stuck") == []


def test_a_step_running_past_its_lease_raises_a_stuck_alert(conn):
    define(conn, chain(n=1))
    enqueue(conn, "chain")
    claim(conn, "echo")
    conn.execute("update wf.steps set lease_until = now() - interval '5 minutes'")
    conn.execute("update pgmq.q_wf_echo set enqueued_at = now() - interval '6 minutes', "
                 "vt = now() - interval '5 minutes'")
    [alert] = alerts(conn, "stuck")
    assert alert["subject"] == "echo" and "lease" in alert["message"]


def test_a_queue_deeper_than_alert_queue_depth_raises_a_queue_depth_alert(conn):
    setting(conn, "alert_queue_depth", 2)
    define(conn, chain(n=1))
    for _ in range(3):
        enqueue(conn, "chain")
    [alert] = alerts(conn, "queue_depth")
    assert (alert["key"], alert["subject"], alert["value"], alert["threshold"]) == ("queue_depth:echo", "echo", 3, 2)
    assert "3 messages waiting" in alert["message"]


def test_a_queue_at_alert_queue_depth_raises_no_alert(conn):
    setting(conn, "alert_queue_depth", 2)
    define(conn, chain(n=1))
    for _ in range(2):
        enqueue(conn, "chain")
    assert alerts(conn, "queue_depth") == []


def test_the_default_queue_depth_threshold_is_the_overviews_1000(conn):
    assert conn.execute("select wf.setting('alert_queue_depth') as v").fetchone()["v"] == 1000


def answer(conn, ok: int, failed: int) -> None:
    """ok + failed calls of the echo stage answered just now, failed ones for good."""
    define(conn, chain(n=1, max_retries=0))
    for _ in range(ok + failed):
        enqueue(conn, "chain")
    tasks = claim(conn, "echo", ok + failed)
    for task in tasks[:ok]:
        complete(conn, task)
    for task in tasks[ok:]:
        fail(conn, task, "boom")


def test_a_stage_failing_more_than_alert_failure_rate_raises_a_failure_rate_alert(conn):
    setting(conn, "alert_failure_min_calls", 4)
    answer(conn, ok=4, failed=1)
    [alert] = alerts(conn, "failure_rate")
    assert (alert["key"], alert["subject"], alert["value"], alert["threshold"]) == (
        "failure_rate:echo", "echo", Decimal("0.2"), Decimal("0.05"))
    assert "1 of 5 calls failed" in alert["message"]


def test_a_stage_failing_less_than_alert_failure_rate_raises_no_alert(conn):
    setting(conn, "alert_failure_min_calls", 4)
    setting(conn, "alert_failure_rate", 0.25)
    answer(conn, ok=4, failed=1)
    assert alerts(conn, "failure_rate") == []


def test_the_failure_rate_alert_waits_for_alert_failure_min_calls(conn):
    answer(conn, ok=1, failed=1)  # 50 %, but 2 calls of the 20 the default asks for
    assert alerts(conn, "failure_rate") == []


def test_failures_older_than_5_minutes_raise_no_failure_rate_alert(conn):
    setting(conn, "alert_failure_min_calls", 4)
    answer(conn, ok=4, failed=1)
    conn.execute("update wf.events set at = at - interval '6 minutes'")
    assert alerts(conn, "failure_rate") == []


def slow_calls(conn, seconds: int) -> None:
    define(conn, chain(n=1))
    enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    conn.execute("update wf.steps set started_at = now() - make_interval(secs => %s)", (seconds,))
    complete(conn, task)


def test_a_stage_whose_median_call_takes_longer_than_alert_call_ms_raises_a_slow_calls_alert(conn):
    slow_calls(conn, 20)
    [alert] = alerts(conn, "slow_calls")
    assert (alert["subject"], alert["threshold"]) == ("echo", 10000)
    assert alert["value"] > 10000


def test_a_stage_whose_median_call_is_under_alert_call_ms_raises_no_alert(conn):
    slow_calls(conn, 5)
    assert alerts(conn, "slow_calls") == []


def dead_letters(conn, n: int) -> list[str]:
    define(conn, chain(n=1, max_retries=0))
    ids = [enqueue(conn, "chain") for _ in range(n)]
    for task in claim(conn, "echo", n):
        fail(conn, task, "gone", retryable=False)
    return ids


def test_a_step_dead_lettered_in_the_last_hour_raises_a_dlq_growth_alert(conn):
    [run_id] = dead_letters(conn, 1)
    [alert] = alerts(conn, "dlq_growth")
    assert (alert["key"], alert["subject"], alert["value"], alert["threshold"]) == ("dlq_growth:echo", "echo", 1, 0)
    assert alert["detail"]["runs"] == [run_id]
    assert "dead-lettered" in alert["message"]


def test_dead_letters_up_to_alert_dlq_growth_raise_no_alert(conn):
    setting(conn, "alert_dlq_growth", 2)
    dead_letters(conn, 2)
    assert alerts(conn, "dlq_growth") == []


def test_a_step_dead_lettered_more_than_an_hour_ago_raises_no_dlq_growth_alert(conn):
    dead_letters(conn, 1)
    conn.execute("update wf.events set at = at - interval '61 minutes' where kind = 'dead'")
    assert alerts(conn, "dlq_growth") == []


# ---- the alert workflow ------------------------------------------------------------------------


def test_tick_starts_the_alert_workflow_with_the_alert_as_its_input(conn):
    define(conn, ALERT_WORKFLOW)
    setting(conn, "alert_workflow", "alerts-to-slack")
    stuck_queue(conn)
    assert tick_alerts(conn) == {"open": 1, "started": 1}
    [run] = alert_runs(conn)
    assert (run["input"]["key"], run["input"]["kind"], run["input"]["subject"]) == ("stuck:echo", "stuck", "echo")
    assert "stuck" in run["input"]["message"]
    assert run["correlation_id"] == "stuck:echo"
    assert run["idempotency_key"].startswith("alert:stuck:echo:")


def test_tick_twice_starts_the_alert_workflow_once_per_alert_and_hour(conn):
    define(conn, ALERT_WORKFLOW)
    setting(conn, "alert_workflow", "alerts-to-slack")
    stuck_queue(conn)
    tick_alerts(conn)
    enqueue(conn, "chain")  # the alert's value moves (2 stuck steps now): still the same alert
    back_date_queue(conn)
    assert tick_alerts(conn) == {"open": 1, "started": 0}
    assert len(alert_runs(conn)) == 1


def test_tick_starts_the_alert_workflow_again_in_a_new_hour(conn):
    define(conn, ALERT_WORKFLOW)
    setting(conn, "alert_workflow", "alerts-to-slack")
    stuck_queue(conn)
    tick_alerts(conn)
    # the first run as if started in the hour before
    conn.execute("update wf.runs set idempotency_key = 'alert:stuck:echo:an-hour-ago' "
                 "where workflow = 'alerts-to-slack'")
    assert tick_alerts(conn)["started"] == 1
    assert len(alert_runs(conn)) == 2


def test_tick_starts_one_alert_run_per_alert(conn):
    define(conn, ALERT_WORKFLOW)
    setting(conn, "alert_workflow", "alerts-to-slack")
    setting(conn, "alert_queue_depth", 1)
    stuck_queue(conn, runs=2)
    assert tick_alerts(conn) == {"open": 2, "started": 2}
    assert sorted(r["correlation_id"] for r in alert_runs(conn)) == ["queue_depth:echo", "stuck:echo"]


def test_tick_starts_no_alert_workflow_when_the_setting_is_null(conn):
    define(conn, ALERT_WORKFLOW)
    stuck_queue(conn)
    assert tick_alerts(conn) == {"open": 1, "started": 0}
    assert alert_runs(conn) == []


def test_a_missing_alert_workflow_is_reported_once_by_tick_and_in_alerts_not_raised(conn):
    setting(conn, "alert_workflow", "no-such-workflow")
    setting(conn, "alert_queue_depth", 1)
    stuck_queue(conn, runs=2)  # two alerts that would each have started it
    result = tick_alerts(conn)
    assert (result["open"], result["started"]) == (3, 0)
    reported = result["alert_workflow_missing"]  # one message, not one per alert
    assert "no-such-workflow" in reported and "does not exist" in reported
    [missing] = alerts(conn, "alert_workflow_missing")
    assert (missing["key"], missing["subject"]) == ("alert_workflow_missing:no-such-workflow", "no-such-workflow")
    assert missing["message"] == reported
    assert conn.execute("select count(*) as n from wf.runs where workflow = 'no-such-workflow'").fetchone()["n"] == 0


def test_an_inactive_alert_workflow_is_reported_as_missing(conn):
    define(conn, ALERT_WORKFLOW)
    conn.execute("select wf.deactivate('alerts-to-slack')")
    setting(conn, "alert_workflow", "alerts-to-slack")
    stuck_queue(conn)
    result = tick_alerts(conn)
    assert result["started"] == 0 and "inactive" in result["alert_workflow_missing"]
    assert [a["subject"] for a in alerts(conn, "alert_workflow_missing")] == ["alerts-to-slack"]


def test_an_alert_workflow_that_refuses_the_alert_is_reported_by_tick_not_raised(conn):
    define(conn, {**ALERT_WORKFLOW, "required_fields": ["channel"]})
    setting(conn, "alert_workflow", "alerts-to-slack")
    stuck_queue(conn)
    result = tick_alerts(conn)
    assert result["started"] == 0
    [refused] = result["not_started"]
    assert refused["key"] == "stuck:echo" and "channel" in refused["error"]


# ---- settings out of range ------------------------------------------------------------------

OUT_OF_RANGE = [
    ("retention_days", 0), ("retention_days", -1), ("retention_days", 3651), ("retention_days", "30"),
    ("retention_budget_ms", 9), ("retention_budget_ms", 60001), ("retention_budget_ms", 1.5),
    ("stuck_after_seconds", 0), ("stuck_after_seconds", 604801), ("stuck_after_seconds", -5),
    ("max_input_bytes", 0), ("max_input_bytes", 104857601),
    ("max_output_bytes", 0), ("max_output_bytes", 104857601),
    ("alert_queue_depth", 0), ("alert_queue_depth", 1000000001), ("alert_queue_depth", None),
    ("alert_failure_rate", 0), ("alert_failure_rate", 1.5), ("alert_failure_rate", "5%"),
    ("alert_failure_min_calls", 0), ("alert_failure_min_calls", 2.5),
    ("alert_call_ms", 0), ("alert_call_ms", 86400001),
    ("alert_dlq_growth", -1), ("alert_dlq_growth", True),
    ("alert_workflow", 42), ("alert_workflow", "Not A Workflow!"), ("alert_workflow", ""),
]


@pytest.mark.parametrize(("key", "value"), OUT_OF_RANGE)
def test_a_setting_out_of_range_is_refused_with_22023_naming_it(shared_conn, key, value):
    before = shared_conn.execute("select value from wf.settings where key = %s", (key,)).fetchone()["value"]
    with pytest.raises(errors.InvalidParameterValue, match=rf"setting {key} must be"):
        setting(shared_conn, key, value)
    assert shared_conn.execute("select value from wf.settings where key = %s", (key,)).fetchone()["value"] == before


def test_every_setting_has_a_range(shared_conn):
    keys = [r["key"] for r in shared_conn.execute("select key from wf.settings order by key").fetchall()]
    assert {k for k, _ in OUT_OF_RANGE} == set(keys), "a setting without a case in OUT_OF_RANGE"
    refused = []
    for key in keys:
        try:
            setting(shared_conn, key, {"not": "a value"})
        except errors.InvalidParameterValue as exc:
            if f"setting {key} must be" in str(exc):
                refused.append(key)
    assert refused == keys, "each setting needs a range in sql/functions/check_setting.sql"


def test_an_inserted_setting_out_of_range_is_refused_too(shared_conn):
    with pytest.raises(errors.InvalidParameterValue, match="setting alert_call_ms must be"):
        shared_conn.execute("""insert into wf.settings (key, value, description) values ('alert_call_ms', '0', 'x')
                               on conflict (key) do update set value = excluded.value""")


@pytest.mark.parametrize(("key", "value"), [
    ("retention_days", 14), ("retention_days", 0.01), ("retention_budget_ms", 2000), ("stuck_after_seconds", 60),
    ("max_input_bytes", 100), ("max_output_bytes", 100),
    ("alert_queue_depth", 5000), ("alert_failure_rate", 0.1), ("alert_failure_rate", 1), ("alert_failure_min_calls", 1),
    ("alert_call_ms", 30000), ("alert_dlq_growth", 0), ("alert_workflow", "alerts-to-slack"), ("alert_workflow", None),
])
def test_a_setting_in_range_is_stored(shared_conn, key, value):
    before = shared_conn.execute("select value from wf.settings where key = %s", (key,)).fetchone()["value"]
    setting(shared_conn, key, value)
    try:
        assert shared_conn.execute("select value from wf.settings where key = %s", (key,)).fetchone()["value"] == value
    finally:
        setting(shared_conn, key, before)


def test_wf_reader_reads_the_alerts(conn, login_as):
    dead_letters(conn, 1)
    with psycopg.connect(login_as("wf_reader"), row_factory=dict_row) as reader:
        assert [a["key"] for a in alerts(reader)] == ["dlq_growth:echo"]
        comment = reader.execute("select obj_description('wf.alerts'::regclass, 'pg_class') as c").fetchone()["c"]
        assert "alert" in comment
