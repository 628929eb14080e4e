"""scripts/gen_runs.py: a small population has the asked counts and proportions, dead letters,
runs spread over the last 30 days (steps and events moved with their run), open runs in their
states, and the big run with every step succeeded."""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from gen_runs import BIG_WORKFLOW, generate, split

FINISHED, RUNNING, BIG_STEPS = 300, 40, 20


async def test_a_small_population_has_the_asked_shape(db: str) -> None:
    summary = await generate(db, FINISHED, RUNNING, BIG_STEPS, chunk=100)  # 3 chunks, 2 lanes at once
    completed, failed, cancelled = split(FINISHED, [0.94, 0.04, 0.02])
    assert (completed, failed, cancelled) == (282, 12, 6)
    with psycopg.connect(db, row_factory=dict_row) as conn:
        counts = {r["status"]: r["n"] for r in conn.execute(
            "select status, count(*) as n from wf.runs where workflow <> %s group by status", (BIG_WORKFLOW,))}
        assert {k: counts.get(k, 0) for k in ("completed", "failed", "cancelled")} == {
            "completed": completed, "failed": failed, "cancelled": cancelled}
        assert counts.get("pending", 0) + counts.get("running", 0) == RUNNING
        assert counts.get("pending", 0) > 0 and counts.get("running", 0) > 0
        assert sum(counts.values()) == FINISHED + RUNNING

        # every failed run has its dead step in the dead-letter queue
        dead = conn.execute("select run_id, dlq_msg_id from wf.dead_letters").fetchall()
        assert len({d["run_id"] for d in dead}) == failed and all(d["dlq_msg_id"] for d in dead)
        assert conn.execute("select count(*) as n from pgmq.q_wf_dlq").fetchone()["n"] == len(dead)
        # completed runs include retried attempts and a failed step the run went on without
        assert conn.execute("select count(*) as n from wf.events where kind = 'retrying'").fetchone()["n"] > 0

        # the finished runs spread over the last 30 days, their steps and events moved with them
        spread = conn.execute(
            "select count(distinct created_at::date) as days, min(created_at) > now() - interval '31 days' as recent, "
            "max(created_at) - min(created_at) > interval '25 days' as wide "
            "from wf.runs where status in ('completed', 'failed', 'cancelled') and workflow <> %s",
            (BIG_WORKFLOW,)).fetchone()
        assert spread["days"] >= 20 and spread["recent"] and spread["wide"]
        assert conn.execute(
            "select count(*) as n from wf.runs r where r.status in ('completed', 'failed', 'cancelled') and ("
            " r.finished_at < r.created_at or r.finished_at > r.created_at + interval '1 hour'"
            " or exists (select 1 from wf.events e where e.run_id = r.id"
            "            and e.at not between r.created_at and r.finished_at + interval '1 second')"
            " or exists (select 1 from wf.steps s where s.run_id = r.id"
            "            and s.finished_at not between r.created_at and r.finished_at + interval '1 second'))"
        ).fetchone()["n"] == 0
        # the open runs are not back-dated
        assert conn.execute("select bool_and(created_at > now() - interval '1 hour') as ok from wf.runs "
                            "where status in ('pending', 'running')").fetchone()["ok"]

        # open runs in their states: running, queued, retrying, waiting for a signal
        steps = {r["status"] for r in conn.execute(
            "select s.status from wf.steps s join wf.runs r on r.id = s.run_id "
            "where r.status in ('pending', 'running')")}
        assert {"running", "queued", "retrying"} <= steps
        assert conn.execute("select count(*) as n from wf.runs_overview "
                            "where current_steps like '%waiting for signal%'").fetchone()["n"] >= 1

        # inputs with an id, an email and a short text; correlation ids on some runs
        inputs = conn.execute(
            "select input, correlation_id from wf.runs where workflow = 'order-fulfilment'").fetchall()
        assert all({"order_id", "email", "note"} <= i["input"].keys() for i in inputs)
        assert 0 < sum(i["correlation_id"] is not None for i in inputs) < len(inputs)

        big = conn.execute("select workflow, status, (select count(*) from wf.steps s where s.run_id = r.id) as steps, "
                           "(select count(*) from wf.steps s where s.run_id = r.id and s.status = 'succeeded') as ok "
                           "from wf.runs r where r.id = %s", (summary.big_run_id,)).fetchone()
        assert big == {"workflow": BIG_WORKFLOW, "status": "completed", "steps": BIG_STEPS, "ok": BIG_STEPS}
