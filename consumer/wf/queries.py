"""Every SQL statement the Python package sends, one named constant each.

Parameters are asyncpg's $1, $2, …; what they call is wf's interface (README, SQL API and Views).
Constants only, grouped by who sends them; add new ones to the group they belong to.
"""

from __future__ import annotations

# ---- worker: stages and wake-ups ----------------------------------------------------------------

# the stages with their per-stage limits and queue depths (a function a wf_worker login may call)
WORKER_STAGES = "select name, queue, max_concurrency, queue_length from wf.worker_stages()"
# true when pg_cron runs wf.tick() every minute, so the workers need not
TICK_SCHEDULED = "select wf.tick_scheduled()"
# the minute job (scheduled runs, expired leases, stuck steps, retention); jsonb counts of what it did
TICK = "select wf.tick()"
# a round trip on the LISTEN connection: a dead socket shows itself here
PING = "select 1"

# ---- worker: one step -------------------------------------------------------------------------

# claim up to $2 steps of stage $1: one row per attempt started (README, SQL API: wf.claim)
CLAIM = "select * from wf.claim($1, $2)"
# heartbeat: keep attempt $3 of step $2 of run $1 invisible $4 more seconds; false when it is not current
EXTEND = "select wf.extend($1, $2, $3, $4)"

# ---- worker: reports --------------------------------------------------------------------------

# one answer: attempt $3 of step $2 of run $1 succeeded with output $4
COMPLETE = "select wf.complete($1, $2, $3, $4)"
# many answers in one statement and one commit (the group commit): parallel arrays of runs, steps, attempts, outputs
COMPLETE_BATCH = "select wf.complete_batch($1::uuid[], $2::text[], $3::int[], $4::jsonb[])"
# attempt $3 of step $2 of run $1 failed: error $4, retryable $5, http_status $6, retry_after_seconds $7
FAIL = "select wf.fail($1, $2, $3, $4, $5, $6, $7)"
# attempt $3 of step $2 of run $1 is skipped (its `when` rendered false), reason $4
SKIP = "select wf.skip($1, $2, $3, $4)"

# ---- command line -----------------------------------------------------------------------------

# store definition $1 (validated again in SQL); returns its version
DEFINE = "select wf.define($1::jsonb)"
# start workflow $1 with input $2, idempotency key $3, run_at $4, correlation id $5; returns the run id
ENQUEUE = "select wf.enqueue($1, $2::jsonb, $3, $4, $5) as id"
# the newest $1 runs
RUNS_OVERVIEW = "select * from wf.runs_overview limit $1"
# one run's overview row
RUN = "select * from wf.runs_overview where run_id = $1"
# one run's attempts, in the order they started
RUN_ATTEMPTS = "select * from wf.step_timeline where run_id = $1 order by started_at"
# one run's history, one row per transition
RUN_EVENTS = "select at, step, attempt, kind, detail from wf.run_history where run_id = $1 order by seq"
# one row per stage: depth, in flight, recent outcomes, latency
STAGE_HEALTH = "select * from wf.stage_health"
# the dead steps and the runs to retry
DEAD_LETTERS = "select * from wf.dead_letters"
# resume failed run $1; its status comes from the view (a wf_admin login may not read the private tables)
RETRY = "select wf.retry($1) as ok, (select status from wf.runs_overview where run_id = $1) as status"
# cancel run $1 with reason $2; its status comes from the view, as for RETRY
CANCEL = ("select wf.cancel($1, $2) as ok, (select status from wf.runs_overview "
          "where run_id = $1) as status")
