"""Operations at a million runs (issue 14): wf.tick rolls the attempts' outcomes up per stage and
minute (wf.stage_minutes) and applies retention to every table wf writes, pgmq's archives and the
dead-letter queue included, in small batches; wf.stage_health, wf.stuck and wf.failures find
what they show without reading every step (through the roll-up, the queues' messages and the
failure events) and still show exactly what they did."""

from __future__ import annotations

import threading

import psycopg
from psycopg.rows import dict_row
from wfsql import (
    REPO,
    archived,
    chain,
    claim,
    complete,
    complete_batch,
    define,
    dlq,
    enqueue,
    fail,
    make_visible,
    messages,
    queue_of,
    step_row,
)


def tick(conn) -> dict:
    return conn.execute("select wf.tick() as r").fetchone()["r"]


def health(conn, stage: str = "echo") -> dict:
    return conn.execute("select * from wf.stage_health where stage = %s", (stage,)).fetchone()


def outcomes(conn, seconds_ago: int, durations: dict[str, int]) -> None:
    """Simulate time: the outcome events of these runs (run id → duration ms) happened that long ago."""
    for run_id, ms in durations.items():
        conn.execute("update wf.events set at = now() - make_interval(secs => %s), "
                     "detail = detail || jsonb_build_object('duration_ms', %s::int) "
                     "where run_id = %s and kind in ('succeeded', 'retrying', 'failed', 'dead')",
                     (seconds_ago, ms, run_id))


def finished_runs(conn, n: int, max_retries: int = 0) -> list[str]:
    """n runs of a one-step chain, answered: every third one failed (dead), the rest completed."""
    define(conn, chain(n=1, max_retries=max_retries))
    runs = [enqueue(conn, "chain") for _ in range(n)]
    for i, task in enumerate(claim(conn, "echo", n)):
        if i % 3 == 2:
            fail(conn, task, "gone", http_status=410)
        else:
            complete(conn, task)
    return runs


def back_date_runs(conn, runs: list[str], days: float) -> None:
    conn.execute("update wf.runs set created_at = now() - make_interval(secs => %s + 60), "
                 "finished_at = now() - make_interval(secs => %s) where id = any(%s::uuid[])",
                 (days * 86400, days * 86400, runs))


# ---- the roll-up: wf.stage_minutes ---------------------------------------------------------------


def test_tick_rolls_finished_minutes_up_and_stage_health_counts_the_same(conn):
    runs = finished_runs(conn, 6)
    outcomes(conn, 30 * 60, {r: 100 * (i + 1) for i, r in enumerate(runs[:3])})  # half an hour ago
    outcomes(conn, 3 * 60, {r: 100 * (i + 1) for i, r in enumerate(runs[3:])})  # three minutes ago
    conn.execute("update wf.rollup_marks set through = date_trunc('minute', now()) - interval '40 minutes'")
    before = health(conn)

    assert tick(conn)["rolled_up_minutes"] == 10  # at most ten minutes a tick
    assert tick(conn)["rolled_up_minutes"] == 10
    assert tick(conn)["rolled_up_minutes"] == 10
    tick(conn)
    rolled = conn.execute("select sum(succeeded) as ok, sum(failed) as bad from wf.stage_minutes "
                          "where stage = 'echo'").fetchone()
    assert (rolled["ok"], rolled["bad"]) == (4, 2)  # both minutes are behind the mark now
    after = health(conn)
    same = ("succeeded_5m", "failed_5m", "succeeded_1h", "failed_1h", "p50_ms", "p95_ms")
    assert {k: after[k] for k in same} == {k: before[k] for k in same}
    assert (after["succeeded_5m"], after["failed_5m"], after["succeeded_1h"], after["failed_1h"]) == (2, 1, 4, 2)


def test_stage_health_adds_the_minutes_not_rolled_up_from_the_events(conn):
    runs = finished_runs(conn, 3)
    outcomes(conn, 20 * 60, {runs[0]: 50})
    conn.execute("update wf.rollup_marks set through = date_trunc('minute', now()) - interval '25 minutes'")
    tick(conn)
    tick(conn)  # rolls up to the last minute: runs[0]'s outcome is in wf.stage_minutes
    assert conn.execute("select count(*) as n from wf.stage_minutes").fetchone()["n"] == 1
    # runs[1] and runs[2] answered just now: read from wf.events
    row = health(conn)
    assert (row["succeeded_1h"], row["failed_1h"], row["succeeded_5m"], row["failed_5m"]) == (2, 1, 1, 1)
    assert float(row["current_rate"]) == round(2 / 60, 2)


def test_an_attempts_outcome_event_names_its_stage(conn):
    define(conn, chain(n=1, max_retries=1))
    batched, one, retried = (enqueue(conn, "chain") for _ in range(3))
    tasks = {str(t["run_id"]): t for t in claim(conn, "echo", 3)}
    assert complete_batch(conn, [tasks[batched]], [{}]) == 1  # set-based
    complete(conn, tasks[one])  # one by one
    fail(conn, tasks[retried], "503", http_status=503)
    make_visible(conn, "echo")
    [again] = claim(conn, "echo")
    fail(conn, again, "gone", retryable=False)  # dead
    rows = conn.execute("select kind, stage from wf.events where kind in ('succeeded', 'retrying', 'failed', 'dead') "
                        "order by id").fetchall()
    assert [(r["kind"], r["stage"]) for r in rows] == [
        ("succeeded", "echo"), ("succeeded", "echo"), ("retrying", "echo"), ("dead", "echo")]


def test_an_outcome_written_without_its_stage_is_counted_by_its_steps_function(conn):
    runs = finished_runs(conn, 3)
    conn.execute("update wf.events set stage = null")  # as an older wf wrote them
    row = health(conn)
    assert (row["succeeded_1h"], row["failed_1h"]) == (2, 1)
    conn.execute("update wf.rollup_marks set through = now() - interval '5 minutes'")
    conn.execute("update wf.events set at = at - interval '1 minute' where run_id = any(%s::uuid[])", (runs,))
    tick(conn)
    rolled = conn.execute("select stage, sum(succeeded) as ok, sum(failed) as bad from wf.stage_minutes "
                          "group by stage").fetchall()
    assert [(r["stage"], r["ok"], r["bad"]) for r in rolled] == [("echo", 2, 1)]


def test_a_duration_percentile_is_within_two_and_a_half_percent(conn):
    values = [3, 17, 120, 999, 4321, 60000]
    for ms in values:
        bucket = conn.execute("select wf.duration_bucket(%s) as b", (ms,)).fetchone()["b"]
        got = conn.execute("select wf.duration_percentile(jsonb_build_object(%s::text, 1), 0.5) as p",
                           (bucket,)).fetchone()["p"]
        assert abs(float(got) - ms) <= 0.025 * ms, (ms, got)
    hist = conn.execute("select jsonb_object_agg(b, n) as h from (select wf.duration_bucket(g) as b, count(*) as n "
                        "from generate_series(1, 1000) g group by 1) x").fetchone()["h"]
    p95 = conn.execute("select wf.duration_percentile(%s, 0.95) as p",
                       (psycopg.types.json.Jsonb(hist),)).fetchone()["p"]
    assert abs(float(p95) - 950) <= 0.025 * 950


def test_the_written_out_duration_buckets_agree_with_wf_duration_bucket(conn):
    define(conn, chain(n=1))
    runs = [enqueue(conn, "chain") for _ in range(7)]
    for task in claim(conn, "echo", 7):
        complete(conn, task)
    durations = [0.4, 1, 3, 17.5, 120, 4321, 86_400_000]  # ms, sub-millisecond to a day
    for run_id, ms in zip(runs, durations, strict=True):
        conn.execute("update wf.events set detail = detail || jsonb_build_object('duration_ms', %s::numeric) "
                     "where run_id = %s and kind = 'succeeded'", (ms, run_id))
    got = sorted(r["bucket"] for r in conn.execute("select bucket from wf.recent_outcomes('-infinity')"))
    expected = sorted(conn.execute("select wf.duration_bucket(%s::numeric) as b", (ms,)).fetchone()["b"]
                      for ms in durations)
    assert got == expected and len(set(got)) == len(durations)
    ends = conn.execute("select ms, bucket, wf.duration_bucket(ms) as expected from wf.recent_run_ends('-infinity') "
                        "where outcome = 'completed'").fetchall()
    assert len(ends) == 7 and all(r["bucket"] == r["expected"] for r in ends)


def test_a_minute_rolled_up_twice_adds_its_counts_and_histograms(conn):
    runs = finished_runs(conn, 3)  # 2 succeeded, 1 dead
    outcomes(conn, 150, {r: 100 for r in runs})
    minute = conn.execute("select date_trunc('minute', now() - interval '150 seconds') as m").fetchone()["m"]
    one_ms = conn.execute("select wf.duration_bucket(1) as b").fetchone()["b"]
    conn.execute("insert into wf.stage_minutes (stage, minute, succeeded, failed, durations) "
                 "values ('echo', %s, 1, 0, jsonb_build_object(%s::text, 1))", (minute, one_ms))
    conn.execute("update wf.rollup_marks set through = %s where name = 'stage_minutes'", (minute,))
    tick(conn)
    row = conn.execute("select succeeded, failed, durations from wf.stage_minutes where minute = %s",
                       (minute,)).fetchone()
    hundred = conn.execute("select wf.duration_bucket(100) as b").fetchone()["b"]
    assert (row["succeeded"], row["failed"]) == (3, 1)
    assert row["durations"] == {str(one_ms): 1, str(hundred): 3}


def test_tick_keeps_a_day_of_stage_minutes(conn):
    conn.execute("insert into wf.stage_minutes (stage, minute, succeeded, failed, durations) values "
                 "('echo', date_trunc('minute', now()) - interval '25 hours', 1, 0, '{}'), "
                 "('echo', date_trunc('minute', now()) - interval '23 hours', 1, 0, '{}')")
    conn.execute("update wf.rollup_marks set through = date_trunc('minute', now()) - interval '5 minutes'")
    tick(conn)
    left = conn.execute("select now() - minute < interval '1 day' as recent from wf.stage_minutes").fetchall()
    assert [r["recent"] for r in left] == [True]


# ---- wf.workflow_stats from wf.workflow_hours -----------------------------------------------------


RUN_ENDS = "('run_completed', 'run_failed', 'run_cancelled')"


def stats(conn, workflow: str = "chain") -> list[dict]:
    return conn.execute("select * from wf.workflow_stats where workflow = %s order by version", (workflow,)).fetchall()


def ended(conn, runs: list[str], seconds_ago: int, took: int = 60) -> None:
    """Simulate time: these runs ended that long ago, `took` seconds after they were created."""
    conn.execute(f"with e as (update wf.events set at = now() - make_interval(secs => %s) "
                 f"where run_id = any(%s::uuid[]) and kind in {RUN_ENDS}) "
                 "update wf.runs set created_at = now() - make_interval(secs => %s + %s), "
                 "finished_at = now() - make_interval(secs => %s) where id = any(%s::uuid[])",
                 (seconds_ago, runs, seconds_ago, took, seconds_ago, runs))


def counted(rows: list[dict]) -> list[tuple]:
    return [(r["version"], r["runs"], r["completed"], r["failed"], r["cancelled"], r["open"]) for r in rows]


def test_tick_rolls_ended_runs_up_per_hour_and_workflow_stats_counts_the_same(conn):
    runs = finished_runs(conn, 6)  # 4 completed, 2 failed
    ended(conn, runs[:3], 3 * 3600, took=60)
    ended(conn, runs[3:], 120, took=60)
    conn.execute("update wf.rollup_marks set through = now() - interval '4 hours' where name = 'workflow_hours'")
    before = stats(conn)
    assert counted(before) == [(1, 6, 4, 2, 0, 0)]
    assert before[0]["mean_duration"].total_seconds() == 60
    assert abs(before[0]["p95_duration"].total_seconds() - 60) <= 0.025 * 60

    rolled = [tick(conn)["rolled_up_run_minutes"] for _ in range(6)]
    assert rolled[:4] == [60, 60, 60, 60] and rolled[-1] <= 1  # at most an hour a tick
    hours = conn.execute("select sum(completed) as ok, sum(failed) as bad, count(*) as n "
                         "from wf.workflow_hours").fetchone()
    assert (hours["ok"], hours["bad"], hours["n"]) == (4, 2, 2)  # two hours: 3 h ago and 2 minutes ago
    after = stats(conn)
    keys = ("runs", "completed", "failed", "open", "completion_rate", "failure_rate", "mean_duration", "p95_duration")
    assert {k: after[0][k] for k in keys} == {k: before[0][k] for k in keys}


def test_workflow_stats_counts_the_last_days_ended_runs_and_the_open_ones(conn):
    runs = finished_runs(conn, 3)  # completed, completed, failed
    ended(conn, runs[:1], 26 * 3600)  # before the day
    conn.execute("select wf.cancel(%s)", (enqueue(conn, "chain"),))
    enqueue(conn, "chain")  # open
    define(conn, chain(n=2))
    enqueue(conn, "chain")  # open, version 2
    assert counted(stats(conn)) == [(1, 4, 1, 1, 1, 1), (2, 1, 0, 0, 0, 1)]
    row = stats(conn)[0]
    assert (float(row["completion_rate"]), float(row["failure_rate"])) == (round(1 / 3, 4), round(1 / 3, 4))
    conn.execute("update wf.rollup_marks set through = now() - interval '30 hours' where name = 'workflow_hours'")
    conn.execute("update wf.events set at = at - interval '1 minute' where kind in " + RUN_ENDS
                 + " and at > now() - interval '1 hour'")
    for _ in range(26):
        tick(conn)
    assert counted(stats(conn)) == [(1, 4, 1, 1, 1, 1), (2, 1, 0, 0, 0, 1)]


def test_a_run_retried_after_it_failed_counts_each_time_it_ends(conn):
    runs = finished_runs(conn, 3)
    conn.execute("select wf.retry(%s)", (runs[2],))
    [again] = claim(conn, "echo")
    complete(conn, again)
    assert counted(stats(conn)) == [(1, 4, 3, 1, 0, 0)]


def test_tick_keeps_two_days_of_workflow_hours(conn):
    conn.execute("insert into wf.workflow_hours (hour, workflow, version, completed, failed, cancelled, "
                 "completed_ms, durations) values "
                 "(date_trunc('hour', now()) - interval '49 hours', 'chain', 1, 1, 0, 0, 5, '{}'), "
                 "(date_trunc('hour', now()) - interval '47 hours', 'chain', 1, 1, 0, 0, 5, '{}')")
    conn.execute("update wf.rollup_marks set through = now() - interval '5 minutes' where name = 'workflow_hours'")
    tick(conn)
    left = conn.execute("select now() - hour < interval '48 hours' as kept from wf.workflow_hours").fetchall()
    assert [r["kept"] for r in left] == [True]


def test_migration_0021_backfills_the_runs_that_ended_in_the_last_day(conn):
    runs = finished_runs(conn, 6)
    ended(conn, runs[:2], 2 * 3600, took=30)
    ended(conn, runs[2:4], 30 * 3600)  # before the day: left out
    conn.execute("drop view wf.workflow_stats")
    conn.execute("drop table wf.workflow_hours")
    conn.execute("delete from wf.rollup_marks where name = 'workflow_hours'")
    conn.execute((REPO / "sql/migrations/0021_workflow_hours.sql").read_text())
    rows = conn.execute("select completed, failed, completed_ms, durations from wf.workflow_hours "
                        "order by hour").fetchall()
    # runs 0, 1 completed 2 h ago (30 s each); runs 4 (completed) and 5 (failed) just now
    assert [(r["completed"], r["failed"]) for r in rows] == [(2, 0), (1, 1)]
    assert float(rows[0]["completed_ms"]) == 60_000
    bucket = conn.execute("select wf.duration_bucket(30000) as b").fetchone()["b"]
    assert rows[0]["durations"] == {str(bucket): 2}


# ---- in flight and dead, from the queues ----------------------------------------------------------


def test_stage_health_counts_only_running_calls_in_flight(conn):
    define(conn, chain(n=1, max_retries=3))
    for _ in range(3):
        enqueue(conn, "chain")
    first, second, _third = claim(conn, "echo", 3)
    assert health(conn)["in_flight"] == 3
    fail(conn, first, "503", http_status=503)  # retrying: its message waits out the backoff, read once
    complete(conn, second)
    assert health(conn)["in_flight"] == 1
    make_visible(conn, "echo")  # the third's lease is gone: visible again, not in flight
    assert health(conn)["in_flight"] == 0


def in_flight_messages(conn, stage: str = "echo") -> list[dict]:
    """The stage's messages that wf.queue_counts takes for calls in flight: read, not due again."""
    now = conn.execute("select now() as t").fetchone()["t"]
    return [m for m in messages(conn, stage) if m["read_ct"] > 0 and m["vt"] > now]


def test_a_retry_waits_for_a_new_unread_message_and_the_read_one_is_archived(conn):
    define(conn, chain(n=1, max_retries=3))
    run_id = enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    read_msg = step_row(conn, run_id, "s1")["msg_id"]
    fail(conn, task, "503", http_status=503)
    [waiting] = messages(conn, "echo")
    assert waiting["msg_id"] != read_msg and waiting["read_ct"] == 0
    assert step_row(conn, run_id, "s1")["msg_id"] == waiting["msg_id"]
    assert [a["msg_id"] for a in archived(conn, "echo")] == [read_msg]
    assert in_flight_messages(conn) == [] and health(conn)["in_flight"] == 0
    make_visible(conn, "echo")
    [again] = claim(conn, "echo")
    assert again["attempt"] == 2 and complete(conn, again)


def test_a_deferred_step_is_not_a_call_in_flight(conn):
    define(conn, {"name": "later", "steps": [
        {"name": "remind", "function": "echo", "action": "go", "not_before": "{{ at }}"}]})
    run_id = enqueue(conn, "later", {"at": "2099-01-01T00:00:00Z"})
    [task] = claim(conn, "echo")
    assert conn.execute("select wf.defer(%s, %s, %s, now() + interval '1 hour') as ok",
                        (task["run_id"], task["step"], task["attempt"])).fetchone()["ok"]
    [waiting] = messages(conn, "echo")
    assert waiting["read_ct"] == 0 and step_row(conn, run_id, "remind")["msg_id"] == waiting["msg_id"]
    assert health(conn)["in_flight"] == 0


def test_a_wait_with_a_timeout_is_not_a_call_in_flight_and_its_timer_still_fires(conn):
    define(conn, {"name": "approval", "steps": [
        {"name": "approve", "wait_for": {"signal": "approved", "timeout_seconds": 600}},
        {"name": "after", "function": "echo", "action": "go", "depends_on": ["approve"]}]})
    run_id = enqueue(conn, "approval")
    assert claim(conn, "_wf") == []
    [timer] = messages(conn, "_wf")
    assert timer["read_ct"] == 0 and step_row(conn, run_id, "approve")["msg_id"] == timer["msg_id"]
    assert health(conn, "_wf")["in_flight"] == 0
    conn.execute("update wf.steps set wake_at = now() - interval '1 second' where run_id = %s", (run_id,))
    make_visible(conn, "_wf")
    assert claim(conn, "_wf") == []
    assert step_row(conn, run_id, "approve")["status"] == "dead"
    assert messages(conn, "_wf") == []


def test_stage_health_depth_and_in_flight_count_every_priority_band(conn):
    define(conn, chain(n=1))
    for priority in (10, 0, -10, 10):
        conn.execute("select wf.enqueue('chain', '{}'::jsonb, priority => %s)", (priority,))
    claim(conn, "echo", 2)
    row = health(conn)
    assert (row["depth"], row["in_flight"]) == (4, 2)


def test_stage_health_dead_letters_drop_when_the_run_is_retried(conn):
    runs = finished_runs(conn, 3)
    assert health(conn)["dead_letters"] == 1
    conn.execute("select wf.retry(%s)", (runs[2],))
    assert health(conn)["dead_letters"] == 0


# ---- wf.failures from its events ------------------------------------------------------------------


def test_failures_show_a_step_once_at_its_latest_failure_and_not_after_it_succeeded(conn):
    define(conn, chain(n=1, max_retries=3))
    run_id = enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    fail(conn, task, "first", http_status=503)
    make_visible(conn, "echo")
    [task] = claim(conn, "echo")
    fail(conn, task, "second", http_status=503)
    rows = conn.execute("select run_id::text, attempt, error from wf.failures").fetchall()
    assert rows == [{"run_id": run_id, "attempt": 2, "error": "second"}]
    make_visible(conn, "echo")
    [task] = claim(conn, "echo")
    complete(conn, task)
    assert conn.execute("select * from wf.failures").fetchall() == []


def test_failures_are_newest_first(conn):
    runs = finished_runs(conn, 6)
    rows = conn.execute("select run_id::text from wf.failures").fetchall()
    assert [r["run_id"] for r in rows] == [runs[5], runs[2]]


# ---- retention ------------------------------------------------------------------------------------


def test_retention_deletes_old_runs_dead_letters_and_archived_messages(conn):
    runs = finished_runs(conn, 3)  # runs[2] is dead: its message is in wf_dlq
    queue = queue_of(conn, "echo")
    assert len(archived(conn, "echo")) == 3 and len(dlq(conn)) == 1
    back_date_runs(conn, runs, 31)
    conn.execute(f'update pgmq."a_{queue}" set archived_at = now() - interval \'31 days\'')
    fresh = enqueue(conn, "chain")
    complete(conn, claim(conn, "echo")[0])  # archived now: kept

    result = tick(conn)
    assert (result["deleted_runs"], result["deleted_dead_letters"], result["deleted_archived"]) == (3, 1, 3)
    assert dlq(conn) == []
    assert [m["message"]["run_id"] for m in archived(conn, "echo")] == [fresh]
    assert conn.execute("select count(*) as n from wf.events where run_id = any(%s::uuid[])",
                        (runs,)).fetchone()["n"] == 0


def test_retention_days_may_be_a_fraction_of_a_day(conn):
    runs = finished_runs(conn, 2)
    conn.execute("update wf.settings set value = '0.01' where key = 'retention_days'")  # 14.4 minutes
    back_date_runs(conn, runs[:1], 15 / 1440)
    back_date_runs(conn, runs[1:], 14 / 1440)
    assert tick(conn)["deleted_runs"] == 1
    left = conn.execute("select id::text from wf.runs").fetchall()
    assert [r["id"] for r in left] == [runs[1]]


def test_retention_deletes_in_batches_until_none_are_left(conn):
    define(conn, chain(n=1))
    conn.execute("select wf.enqueue('chain', '{}') from generate_series(1, 1100)")
    conn.execute("update wf.runs set status = 'completed', created_at = now() - interval '40 days', "
                 "finished_at = now() - interval '40 days'")
    assert tick(conn)["deleted_runs"] == 1100
    assert conn.execute("select count(*) as n from wf.runs").fetchone()["n"] == 0


def test_tick_spends_the_retention_budget_setting_on_deleting(conn):
    runs = finished_runs(conn, 30)
    back_date_runs(conn, runs, 40)
    conn.execute(f'update pgmq."a_{queue_of(conn, "echo")}" set archived_at = now() - interval \'40 days\'')
    # each run deleted takes 2 ms: the batch of 30 (60 ms) spends a 20 ms budget, so the
    # archives wait for the next tick
    conn.execute("create function pg_temp.slow() returns trigger language plpgsql as "
                 "$$ begin perform pg_sleep(0.002); return old; end $$")
    conn.execute("create trigger slow before delete on wf.runs for each row execute function pg_temp.slow()")
    conn.execute("update wf.settings set value = '20' where key = 'retention_budget_ms'")
    first = tick(conn)
    assert (first["deleted_runs"], first["deleted_archived"]) == (30, 0)
    conn.execute("update wf.settings set value = '5000' where key = 'retention_budget_ms'")
    assert tick(conn)["deleted_archived"] == 30


def test_retention_skips_a_run_another_transaction_holds(conn, db):
    runs = finished_runs(conn, 2)
    back_date_runs(conn, runs, 31)
    with psycopg.connect(db, row_factory=dict_row) as other:
        other.execute("select 1 from wf.runs where id = %s for update", (runs[0],))
        done = threading.Event()
        result: dict = {}

        def run() -> None:
            with psycopg.connect(db, autocommit=True, row_factory=dict_row) as c:
                result.update(tick(c))
            done.set()

        t = threading.Thread(target=run)
        t.start()
        assert done.wait(30), "tick waited for a run another transaction holds"
        t.join()
        other.rollback()
    assert result["deleted_runs"] == 1
    assert [r["id"] for r in conn.execute("select id::text from wf.runs").fetchall()] == [runs[0]]


def test_retention_deletes_an_old_dead_letter_whose_run_is_gone(conn):
    runs = finished_runs(conn, 3)
    conn.execute("delete from wf.runs where id = %s", (runs[2],))  # as an older wf's retention did
    conn.execute("update pgmq.q_wf_dlq set enqueued_at = now() - interval '31 days'")
    assert tick(conn)["deleted_dead_letters"] == 1
    assert dlq(conn) == []

