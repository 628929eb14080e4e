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
# the worker's secrets by name from Supabase Vault (consumer/wf/secrets.py): names $1; read at start and on SIGHUP
VAULT_SECRETS = "select name, decrypted_secret from vault.decrypted_secrets where name = any ($1::text[])"

# ---- worker: one step -------------------------------------------------------------------------

# claim up to $2 steps of stage $1: one row per attempt started (README, SQL API: wf.claim)
CLAIM = "select * from wf.claim($1, $2)"
# heartbeat: keep attempt $3 of step $2 of run $1 invisible $4 more seconds; false when it is not current
EXTEND = "select wf.extend($1, $2, $3, $4)"
# not_before still ahead: give attempt $3 of step $2 of run $1 back until $4; false when the time has come
DEFER = "select wf.defer($1, $2, $3, $4)"

# ---- worker: reports --------------------------------------------------------------------------

# one answer: attempt $3 of step $2 of run $1 succeeded with output $4
COMPLETE = "select wf.complete($1, $2, $3, $4)"
# many answers in one statement and one commit (the group commit): parallel arrays of runs, steps, attempts, outputs
COMPLETE_BATCH = "select wf.complete_batch($1::uuid[], $2::text[], $3::int[], $4::jsonb[])"
# attempt $3 of step $2 of run $1 failed: error $4, retryable $5, http_status $6, retry_after_seconds $7
FAIL = "select wf.fail($1, $2, $3, $4, $5, $6, $7)"
# attempt $3 of step $2 of run $1 is skipped (its `when` rendered false), reason $4
SKIP = "select wf.skip($1, $2, $3, $4)"
# a map step's attempt $3 (step $2, run $1) expands into the items $4 (its for_each rendered)
EXPAND_MAP = "select wf.expand_map($1, $2, $3, $4)"
# a workflow step's attempt $3 (step $2, run $1) starts its child run with input $4; returns the child's id
START_CHILD = "select wf.start_child($1, $2, $3, $4)"
# a sql step's attempt $3 (step $2, run $1): its function runs with args $4 in the transaction recording success
COMPLETE_SQL = "select wf.complete_sql($1, $2, $3, $4)"

# ---- command line -----------------------------------------------------------------------------

# store definition $1 (validated again in SQL); returns its version
DEFINE = "select wf.define($1::jsonb)"
# start workflow $1 with input $2, idempotency key $3, run_at $4, correlation id $5; returns the run id
ENQUEUE = "select wf.enqueue($1, $2::jsonb, $3, $4, $5, $6) as id"
# the newest $1 runs
RUNS_OVERVIEW = "select * from wf.runs_overview limit $1"
# ---- the run list: `wf runs` and the dashboard's Runs page (consumer/wf/runlist.py) -----------------
# Keyset paging over wf.run_inputs (wf.runs' own columns, indexed on (created_at, id), (status, …),
# (workflow, …), (correlation_id, …)); the 50 rows shown are then read from wf.runs_overview. A null
# parameter means "any": planned for its values (a one-shot CLI statement always is; the dashboard's pool
# sets plan_cache_mode = force_custom_plan), `$1 is null or …` folds away and the filter's index is used.

# one page of run ids, newest first: status $1, workflow $2, created in [$3, $4), correlation id $5,
# older than the cursor ($6 created_at, $7 run id); the newest $9 runs so filtered are scanned and
# those whose input (as text, lower case) contains $10 (lower case) kept, at most $8 of them. Each row also
# says how many runs were scanned and which was the oldest (where a search continues).
RUN_PAGE = """
with scan as (
  select r.run_id, r.created_at, ($10::text is null or strpos(lower(r.input::text), $10) > 0) as hit
  from wf.run_inputs r
  where ($1::text is null or r.status = $1) and ($2::text is null or r.workflow = $2)
    and ($3::timestamptz is null or r.created_at >= $3) and ($4::timestamptz is null or r.created_at < $4)
    and ($5::text is null or r.correlation_id = $5)
    and ($6::timestamptz is null or (r.created_at, r.run_id) < ($6, $7::uuid))
  order by r.created_at desc, r.run_id desc
  limit $9
), hits as (
  select s.run_id, s.created_at from scan s
  where s.hit
  order by s.created_at desc, s.run_id desc
  limit $8
), edge as (
  select count(*) over () as scanned, s.run_id, s.created_at from scan s
  order by s.created_at, s.run_id limit 1
)
select h.run_id, h.created_at, e.scanned, e.run_id as edge_run_id, e.created_at as edge_created_at
from edge e left join hits h on true
order by h.created_at desc, h.run_id desc"""
# the overview rows of runs $1 (a page's ids)
RUNS_BY_ID = "select * from wf.runs_overview where run_id = any ($1::uuid[])"
# how many runs per status under the other filters of RUN_PAGE ($1..$4: workflow, created in [$2, $3),
# correlation id), each counted up to $5; one subquery per status, its status a constant, so each is
# planned on the index of its own filters
_COUNT_ONE = """select '{status}'::text as status, (select count(*) from (select 1 from wf.run_inputs r
  where r.status = '{status}' and ($1::text is null or r.workflow = $1)
    and ($2::timestamptz is null or r.created_at >= $2) and ($3::timestamptz is null or r.created_at < $3)
    and ($4::text is null or r.correlation_id = $4) limit $5) c) as n"""
RUN_COUNTS = "\nunion all\n".join(_COUNT_ONE.format(status=status) for status in (
    "scheduled", "pending", "running", "paused", "compensating", "completed", "failed", "compensation_failed",
    "cancelled"))

# every workflow with its current version (one row each), or the versions of workflow $1
WORKFLOWS = """
select workflow, version as current_version, active, steps, created_at as defined_at,
       (select count(*) from wf.workflow_versions o where o.workflow = v.workflow) as versions
from wf.workflow_versions v where current order by workflow"""
WORKFLOW_VERSIONS = ("select workflow, version, current, active, steps, created_at from wf.workflow_versions "
                     "where workflow = $1")
# one version's definition: workflow $1, version $2
WORKFLOW_DEFINITION = "select definition from wf.workflow_versions where workflow = $1 and version = $2"
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
# send signal $2 with payload $3 to run $1; false (and the run's status) when the run is final
SIGNAL = ("select wf.signal($1, $2, $3) as ok, (select status from wf.runs_overview "
          "where run_id = $1) as status")
# pause / resume run $1; false (and the run's status) when it cannot be
PAUSE = "select wf.pause($1) as ok, (select status from wf.runs_overview where run_id = $1) as status"
RESUME = "select wf.resume($1) as ok, (select status from wf.runs_overview where run_id = $1) as status"
# a run's status now (after a statement that changed it: a statement sees the state before it)
RUN_STATUS = "select status from wf.runs_overview where run_id = $1"
# pause / resume stage $1 (a function name); false when it already was
PAUSE_STAGE = "select wf.pause_stage($1) as ok"
# limits of stage $1 across workers: max_concurrency $2, rate_per_second $3, burst $4 (null clears)
CONFIGURE_STAGE = "select wf.configure_stage($1, $2, $3, $4) as ok"
# one stage's health row (its limits)
STAGE = "select * from wf.stage_health where stage = $1"
RESUME_STAGE = "select wf.resume_stage($1) as ok"
# cancel run $1 with reason $2; its status comes from the view, as for RETRY
CANCEL = ("select wf.cancel($1, $2) as ok, (select status from wf.runs_overview "
          "where run_id = $1) as status")

# ---- wf import-legacy: the research prompt's tables (consumer/wf/legacy.py) --------------------------
# {schema} is the tables' schema, quoted by legacy.quote_ident; the tables are exactly as the seed
# creates them (workflow_definitions, workflow_executions)

# does table $1 (a quoted, qualified name) exist?
LEGACY_TABLE_EXISTS = "select pg_catalog.to_regclass($1) is not null"
# every workflow_definitions row, by name
LEGACY_DEFINITIONS = """
select d.id::text as id, d.name, d.description, d.steps, d.required_fields, d.max_retries, d.timeout_seconds,
       d.visibility_timeout, d.version, d.active
from {schema}.workflow_definitions d order by d.name, d.id"""
# make wf's active flag follow the row's: workflow $1
LEGACY_ACTIVATE = "select wf.activate($1)"
LEGACY_DEACTIVATE = "select wf.deactivate($1)"
# the executions the orchestrator had not finished, oldest first, each with the statement that re-enqueues
# it in wf: the idempotency key is its correlation_id (the seed's idempotency key), else one made of its id;
# format's %L quotes every value as PostgreSQL itself does
LEGACY_OPEN_EXECUTIONS = """
select e.id::text as id, e.workflow_name, e.workflow_version, e.status, e.current_step, e.total_steps,
       e.correlation_id, k.idempotency_key,
       format('select wf.enqueue(%L, %L::jsonb, idempotency_key => %L, correlation_id => %L);',
              e.workflow_name, e.input_payload::text, k.idempotency_key, e.correlation_id) as command
from {schema}.workflow_executions e
cross join lateral (select coalesce(e.correlation_id, 'legacy-execution:' || e.id::text) as idempotency_key) k
where e.status in ('pending', 'running')
order by e.created_at nulls first, e.id"""
# wf's view of the workflows those executions name: workflow names $1 → active, current version
LEGACY_WF_WORKFLOWS = """
select workflow, active, version from wf.workflow_versions where current and workflow = any ($1::text[])"""

# ---- dashboard: what only the web UI reads (consumer/wf/dashboard) ------------------------------

# run $1's input and its identity columns
RUN_INPUT = "select input, version, parent_run_id from wf.run_inputs where run_id = $1"
# run $1's steps: definition order, map items and compensations after their step
RUN_STEPS = "select * from wf.run_steps where run_id = $1 order by position, item nulls first, name"
# run $1's tree of child runs (itself first)
RUN_TREE = "select * from wf.run_tree($1)"
# run $1's history, at most $2 rows
RUN_EVENTS_PAGE = ("select seq, at, step, attempt, kind, detail from wf.run_history where run_id = $1 "
                   "order by seq limit $2")
# the stages' per-minute series over the last hour (depth, in flight, outcomes, p95)
STAGE_SERIES = "select * from wf.stage_series"
# dead letters newest first, older than the cursor $1 (the last row's seq), at most $2
DEAD_LETTERS_PAGE = """
select * from wf.dead_letters d where $1::bigint is null or d.seq < $1 order by d.seq desc limit $2"""
# may this login act (cancel, retry, pause, resume, signal)? A wf_reader login may not.
CAN_ACT = """
select pg_catalog.has_function_privilege('wf.cancel(uuid, text)', 'execute')
   and pg_catalog.has_function_privilege('wf.retry(uuid)', 'execute') as can_act"""

# ---- installer: wf.install (and the Supabase routines migration, wf.supabase_migrations) ------

# the ledger: which migrations ran and which routine files are applied (checksums)
LEDGER = """
create schema if not exists wf;
revoke all on schema wf from public;
create table if not exists wf.migrations (
  version    int primary key,
  name       text not null,
  checksum   text not null,
  applied_at timestamptz not null default now()
);
revoke all on wf.migrations from public;
create table if not exists wf.routines (
  path       text primary key,
  kind       text not null check (kind in ('function', 'view')),
  checksum   text not null,
  applied_at timestamptz not null default now()
);
revoke all on wf.routines from public;
"""
LEDGER_MIGRATIONS = "select version, name, checksum from wf.migrations"
LEDGER_RECORD_MIGRATION = "insert into wf.migrations (version, name, checksum) values ($1, $2, $3)"
LEDGER_ROUTINES = "select path, checksum from wf.routines"
LEDGER_RECORD_ROUTINE = """
insert into wf.routines (path, kind, checksum) values ($1, $2, $3)
on conflict (path) do update set kind = excluded.kind, checksum = excluded.checksum, applied_at = now()
"""
# routine files that no longer exist are forgotten (what they created is reported as stale)
LEDGER_FORGET_ROUTINES = "delete from wf.routines where path <> all ($1::text[])"

INSTALL_HAS_PGMQ = """
select exists (select 1 from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
               where n.nspname = 'pgmq' and p.proname = 'send')
"""
INSTALL_PGMQ_AVAILABLE = "select exists (select 1 from pg_catalog.pg_available_extensions where name = 'pgmq')"
INSTALL_CREATE_PGMQ = "create extension if not exists pgmq"
# wf's queues are created by the role that installs wf (and later by wf.define, which runs as
# it): refuse before anything else when that role may not create in schema pgmq, which is what
# happens on Supabase when the extension was created by a superuser (`supabase db push` then
# failed at the baseline's pgmq.create('wf_dlq') with "permission denied for schema pgmq").
# The generated Supabase preflight migration holds this block too: a change to it needs a new
# preflight there (wf.supabase_migrations), landed files never change.
INSTALL_PGMQ_CHECK = """
do $$
begin
  if exists (select 1 from pg_catalog.pg_namespace n where n.nspname = 'pgmq')
     and not (pg_catalog.has_schema_privilege('pgmq', 'usage')
              and pg_catalog.has_schema_privilege('pgmq', 'create')) then
    -- the fix in the message itself: `supabase db push` shows no hint
    raise exception 'wf cannot create its queues: role % may not create in schema pgmq (owned by %); on Supabase, '
                    'enable pgmq in the Supabase Dashboard (Database → Extensions) first and push or install again; '
                    'elsewhere grant usage, create on schema pgmq to %, or install as the owner of schema pgmq',
      current_user, (select n.nspowner::regrole from pg_catalog.pg_namespace n where n.nspname = 'pgmq'), current_user
      using errcode = '42501';
  end if;
end
$$;
"""
# queues missing after a restore (pg_dump leaves pgmq 1.4.4's queue tables out) are created again
INSTALL_ENSURE_QUEUES = "select wf.ensure_queues()"
INSTALL_HAS_RUNS = "select pg_catalog.to_regclass('wf.runs') is not null"
# what `supabase db push` recorded (wf 0.1.0 was pushed without wf's own ledger)
INSTALL_HAS_SUPABASE_LEDGER = "select pg_catalog.to_regclass('supabase_migrations.schema_migrations') is not null"
INSTALL_SUPABASE_VERSIONS = "select coalesce(array_agg(version::text), '{}') from supabase_migrations.schema_migrations"
INSTALL_FUNCTION_NAMES = """
select coalesce(array_agg(p.proname::text), '{}') from pg_catalog.pg_proc p
where p.pronamespace = 'wf'::regnamespace
"""
INSTALL_VIEW_NAMES = """
select coalesce(array_agg(c.relname::text), '{}') from pg_catalog.pg_class c
where c.relnamespace = 'wf'::regnamespace and c.relkind = 'v'
"""
INSTALL_OVERLOADS = """
select count(*) from pg_catalog.pg_proc p where p.pronamespace = 'wf'::regnamespace and p.proname = $1
"""
INSTALL_IS_SQL_FUNCTION = """
select exists (select 1 from pg_catalog.pg_proc p
               where p.pronamespace = 'wf'::regnamespace and p.proname = $1
                 and p.prolang = (select l.oid from pg_catalog.pg_language l where l.lanname = 'sql'))
"""
# functions and views in schema wf that no file defines (an old overload, a dropped file)
INSTALL_STALE_ROUTINES = """
select coalesce(array_agg(name order by name), '{}') from (
  select p.oid::regprocedure::text as name from pg_catalog.pg_proc p
  where p.pronamespace = 'wf'::regnamespace and p.proname <> all ($1::text[])
    and not exists (select 1 from pg_catalog.pg_depend d where d.objid = p.oid and d.deptype = 'e')
  union all
  select c.oid::regclass::text from pg_catalog.pg_class c
  where c.relnamespace = 'wf'::regnamespace and c.relkind in ('v', 'm') and c.relname <> all ($2::text[])
) stale
"""
# functions of sql/functions/ that exist with more than one signature: all but one are left over
INSTALL_OVERLOADED_ROUTINES = """
select coalesce(array_agg(signatures order by signatures), '{}') from (
  select string_agg(p.oid::regprocedure::text, ', ' order by p.oid::regprocedure::text) as signatures
  from pg_catalog.pg_proc p
  where p.pronamespace = 'wf'::regnamespace and p.proname = any ($1::text[])
  group by p.proname having count(*) > 1
) overloaded
"""
# every view reading the given one, directly or through others, with its distance from it
INSTALL_VIEW_DEPENDENTS = """
with recursive dependents (oid, depth) as (
  select distinct r.ev_class, 1
  from pg_catalog.pg_depend d join pg_catalog.pg_rewrite r on r.oid = d.objid
  where d.classid = 'pg_catalog.pg_rewrite'::regclass and d.refobjid = $1::regclass
    and r.ev_class <> $1::regclass
  union
  select r.ev_class, dependents.depth + 1
  from dependents
  join pg_catalog.pg_depend d on d.refobjid = dependents.oid and d.classid = 'pg_catalog.pg_rewrite'::regclass
  join pg_catalog.pg_rewrite r on r.oid = d.objid
  where r.ev_class <> dependents.oid
)
select pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) as name,
       max(dependents.depth) as depth
from dependents join pg_catalog.pg_class c on c.oid = dependents.oid
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
group by c.oid, n.nspname
"""
INSTALL_HAS_PG_CRON = "select exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron')"
INSTALL_CAN_CREATE_PG_CRON = """
select exists (select 1 from pg_catalog.pg_available_extensions where name = 'pg_cron')
       and current_setting('cron.database_name', true) = current_database()
"""
INSTALL_CREATE_PG_CRON = "create extension if not exists pg_cron"
INSTALL_TICK_JOB = "select schedule, command from cron.job where jobname = $1"
INSTALL_SCHEDULE_TICK = "select cron.schedule($1, $2, $3)"
# the generated Supabase migrations: before the first one, the pgmq preflight (pgmq enabled where
# the server has it, as the baseline would, then INSTALL_PGMQ_CHECK); after the routines, the
# tick job where pg_cron is enabled, as `wf install` schedules it ({job}, {schedule}, {command}:
# SQL literals). The nested `if` keeps cron.job unread where pg_cron is absent.
SUPABASE_PREFLIGHT_PGMQ = """
do $$
begin
  if not exists (select 1 from pg_catalog.pg_namespace n where n.nspname = 'pgmq')
     and exists (select 1 from pg_catalog.pg_available_extensions where name = 'pgmq') then
    create extension if not exists pgmq;
  end if;
end
$$;
"""
SUPABASE_SCHEDULE_TICK = """
do $$
begin
  if exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
    if not exists (select 1 from cron.job j
                   where j.jobname = {job} and j.schedule = {schedule} and j.command = {command}) then
      perform cron.schedule({job}, {schedule}, {command});
    end if;
  end if;
end
$$;
"""
INSTALL_QUIET = "set client_min_messages = warning"
# one installer at a time per database (session-level advisory lock)
INSTALL_LOCK = "select pg_advisory_lock($1)"
INSTALL_UNLOCK = "select pg_advisory_unlock($1)"
# function bodies are checked once everything exists, as pg_dump restores them
INSTALL_BODIES_UNCHECKED = "set local check_function_bodies = off"
INSTALL_BODIES_CHECKED = "set local check_function_bodies = on"
# a view whose columns change: restrict, never cascade ({} is a name from sql/views/ or quote_ident)
INSTALL_DROP_VIEW = "drop view {}"

# ---- gen-types ----------------------------------------------------------------------------------

# every active workflow's current version: its input_schema, required_fields and template variables
GEN_TYPES_WORKFLOWS = """
select w.name, d.definition -> 'input_schema' as input_schema,
       d.definition -> 'required_fields' as required_fields, d.input_vars
from wf.workflows w join wf.definitions d on d.workflow = w.name and d.version = w.current_version
where w.active
order by w.name
"""
