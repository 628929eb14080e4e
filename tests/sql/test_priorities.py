"""Priorities (DESIGN §11): a run's priority puts its steps in its stages' high or low band queue, and
wf.claim reads high, then the stage's own queue, then low — a priority-10 step is claimed in the next
claim behind 10,000 ordinary ones. Every path that touches a step's message (answers, retries, cancel,
pause) finds it in its band."""

from __future__ import annotations

import json

import pytest
from psycopg import errors
from wfsql import chain, claim, complete, define, enqueue, fail, run_status


def enqueue_with(conn, priority: int, workflow: str = "chain", **input_: object) -> str:
    return str(conn.execute("select wf.enqueue(%s, %s::jsonb, null, null, null, %s) as id",
                            (workflow, json.dumps(input_), priority)).fetchone()["id"])


def band_depth(conn, band: str) -> int:
    queue = conn.execute(f"select queue_{band} as q from wf.stages where name = 'echo'").fetchone()["q"]
    return conn.execute(f'select count(*) as n from pgmq."q_{queue}"').fetchone()["n"]


def test_a_high_priority_step_is_claimed_before_a_backlog_of_ten_thousand(conn):
    define(conn, chain(n=1))
    conn.execute("select wf.enqueue('chain', jsonb_build_object('i', i)) from generate_series(1, 10000) i")
    urgent = enqueue_with(conn, 10)
    [first] = claim(conn, "echo", 1)
    assert str(first["run_id"]) == urgent


def test_bands_are_read_high_then_normal_then_low(conn):
    define(conn, chain(n=1))
    low = enqueue_with(conn, -5)
    normal = enqueue_with(conn, 0)
    high = enqueue_with(conn, 50)
    assert [str(t["run_id"]) for t in claim(conn, "echo", 10)] == [high, normal, low]


def test_band_queues_are_made_when_first_needed_and_counted_in_stage_health(conn):
    define(conn, chain(n=1))
    enqueue(conn, "chain")
    assert conn.execute("select queue_hi, queue_lo from wf.stages where name = 'echo'").fetchone() == {
        "queue_hi": None, "queue_lo": None}
    enqueue_with(conn, 1)
    assert band_depth(conn, "hi") == 1
    assert conn.execute("select depth from wf.stage_health where stage = 'echo'").fetchone()["depth"] == 2


def test_a_retry_and_the_next_step_of_a_priority_run_stay_in_its_band(conn):
    define(conn, chain(n=2))
    run_id = enqueue_with(conn, 7)
    [task] = claim(conn, "echo")
    fail(conn, task, "flaky")
    assert band_depth(conn, "hi") == 1  # its message comes back in the band after the backoff
    queue = conn.execute("select queue_hi as q from wf.stages where name = 'echo'").fetchone()["q"]
    conn.execute(f"update pgmq.\"q_{queue}\" set vt = now() - interval '1 second'")
    [again] = claim(conn, "echo")
    assert (again["step"], again["attempt"]) == ("s1", 2)
    complete(conn, again, {})
    assert band_depth(conn, "hi") == 1  # s2, queued in the band too
    assert claim(conn, "echo")[0]["step"] == "s2"
    assert run_status(conn, run_id) == "running"


def test_cancel_and_pause_take_a_priority_runs_messages_out_of_its_band(conn):
    define(conn, chain(n=1))
    cancelled, paused = enqueue_with(conn, -3), enqueue_with(conn, -3)
    conn.execute("select wf.cancel(%s)", (cancelled,))
    conn.execute("select wf.pause(%s)", (paused,))
    assert band_depth(conn, "lo") == 0


def test_a_schedule_keeps_its_priority(conn):
    define(conn, chain(n=1))
    conn.execute("insert into wf.schedules (name, cron, workflow, priority) "
                 "values ('nightly', '0 3 * * *', 'chain', 9)")
    run_id = str(conn.execute("select wf.fire_schedule('nightly') as id").fetchone()["id"])
    assert conn.execute("select priority from wf.runs where id = %s", (run_id,)).fetchone()["priority"] == 9


@pytest.mark.parametrize("priority", [101, -101])
def test_a_priority_outside_minus_100_to_100_is_refused_naming_it(conn, priority):
    define(conn, chain(n=1))
    with pytest.raises(errors.InvalidParameterValue, match=f"workflow chain: priority must be between -100 and 100, "
                                                          f"got {priority}"):
        enqueue_with(conn, priority)
