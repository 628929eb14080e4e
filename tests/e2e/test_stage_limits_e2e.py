"""Stage limits across workers with three real worker processes and a real function that counts the
calls in flight and records when each arrived: never more than max_concurrency at once, and at most
rate_per_second * window + burst calls in any window."""

from __future__ import annotations

import uuid

from wfproc import wait_final
from wfsql import define


def test_three_workers_together_keep_the_stages_concurrency_and_rate(db, conn, start_worker):
    key = uuid.uuid4().hex
    define(conn, {"name": "limited", "steps": [
        {"name": "call", "function": "misbehave", "action": "overlap", "payload_template": {"key": key, "ms": 150}}]})
    conn.execute("select wf.configure_stage('misbehave', max_concurrency => 3, rate_per_second => 10, burst => 4)")
    runs = [str(r["id"]) for r in conn.execute(
        "select wf.enqueue('limited', jsonb_build_object('i', i)) as id from generate_series(1, 40) i")]
    workers = [start_worker(db, "--concurrency", "16", "--poll-interval", "0.1") for _ in range(3)]
    statuses = wait_final(conn, runs, 60, workers[0])
    assert set(statuses.values()) == {"completed"}

    outputs = [r["output"] for r in conn.execute(
        "select s.output from wf.steps s join wf.runs r on r.id = s.run_id where r.workflow = 'limited'")]
    assert max(o["in_flight_on_arrival"] for o in outputs) <= 3
    # the rate is kept where it is enforced, at the claim (the attempt's start): arrivals at the
    # function add each call's delivery time, which a loaded machine stretches unevenly (a CI run
    # saw 15 arrivals within a second of 14 claims)
    starts = sorted(r["ms"] for r in conn.execute(
        "select extract(epoch from s.started_at) * 1000 as ms from wf.steps s join wf.runs r on r.id = s.run_id "
        "where r.workflow = 'limited'"))
    for window_ms in (500, 1000, 2000):
        most = max(sum(1 for t in starts if start <= t < start + window_ms) for start in starts)
        assert most <= 10 * window_ms / 1000 + 4, (window_ms, most)
