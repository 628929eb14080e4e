-- wf 0006: the views — psql is the dashboard.

create view wf.runs_overview as
select
  r.id as run_id,
  r.workflow,
  r.version,
  r.status,
  format('%s/%s', agg.done, agg.total) as progress,
  agg.current_steps,
  agg.attempts,
  coalesce(r.error, agg.last_error) as last_error,
  coalesce(r.failed_step, agg.last_error_step) as failed_step,
  r.correlation_id,
  r.created_at,
  r.started_at,
  r.finished_at,
  coalesce(r.finished_at, now()) - r.started_at as duration
from wf.runs r
cross join lateral (
  select
    count(*) filter (where s.status in ('succeeded', 'skipped', 'failed')) as done,
    count(*) as total,
    string_agg(s.name || ' (' || s.status || ')', ', ') filter (where s.status in ('queued', 'running', 'retrying')) as current_steps,
    coalesce(sum(s.attempt), 0)::int as attempts,
    (array_agg(s.error order by s.finished_at desc nulls first) filter (where s.error is not null))[1] as last_error,
    (array_agg(s.name order by s.finished_at desc nulls first) filter (where s.error is not null))[1] as last_error_step
  from wf.steps s
  where s.run_id = r.id
) agg
order by r.created_at desc;
comment on view wf.runs_overview is
  'One row per run, newest first: status, progress (done/total steps), what runs now, attempts, the last error and the step it came from.';

create view wf.step_timeline as
select
  e.run_id,
  e.step,
  e.attempt,
  case o.kind
    when 'succeeded' then 'succeeded'
    when 'retrying' then 'retrying'
    when 'failed' then 'failed'
    when 'dead' then 'dead'
    when 'skipped' then 'skipped'
    when 'cancelled' then 'cancelled'
    when 'attempt_lost' then 'lost'
    else 'running'
  end as status,
  q.queued_at,
  e.at as started_at,
  o.at as finished_at,
  o.at - e.at as duration,
  (o.detail ->> 'http_status')::int as http_status,
  o.detail ->> 'error' as error
from wf.events e
left join lateral (
  select o.kind, o.at, o.detail from wf.events o
  where o.run_id = e.run_id and o.step = e.step and o.attempt = e.attempt and o.id > e.id
    and o.kind in ('succeeded', 'retrying', 'failed', 'dead', 'skipped', 'cancelled', 'attempt_lost')
  order by o.id
  limit 1
) o on true
-- an attempt was queued by the latest event before it that scheduled it: the one whose
-- detail.queued names the step (with its delay), or the step's own retry or lost attempt
left join lateral (
  select q.at + make_interval(secs => coalesce((q.detail -> 'queued' ->> e.step)::int,
                                               (q.detail ->> 'delay_seconds')::int, 0)) as queued_at
  from wf.events q
  where q.run_id = e.run_id and q.id < e.id
    and ((q.step = e.step and q.kind in ('retrying', 'attempt_lost')) or q.detail -> 'queued' ? e.step)
  order by q.id desc
  limit 1
) q on true
where e.kind = 'started';
comment on view wf.step_timeline is
  'One row per step attempt: when it was queued, started and finished, how it ended, the HTTP status and the error. Filter by run_id.';

-- wf.queue_metrics: depth and oldest message age of a stage's queue, for wf.stage_health.
-- Security definer so that readers need no access to schema pgmq (whose functions would let
-- them send to or purge any queue); it answers only for the queues of wf's stages.
create function wf.queue_metrics(p_queue text)
returns table (queue_length bigint, oldest_msg_age_sec int)
language sql
security definer
set search_path = ''
as $$
  select m.queue_length, m.oldest_msg_age_sec
  from wf.stages st cross join lateral pgmq.metrics(st.queue) m
  where st.queue = p_queue
$$;

create view wf.stage_health as
with recent as (
  select s.function, e.kind, e.at, (e.detail ->> 'duration_ms')::numeric as duration_ms
  from wf.events e
  join wf.steps s on s.run_id = e.run_id and s.name = e.step
  where e.at > now() - interval '1 hour'
    and e.kind in ('succeeded', 'retrying', 'failed', 'dead')
), per_stage as (
  select
    recent.function,
    count(*) filter (where kind = 'succeeded' and at > now() - interval '5 minutes') as succeeded_5m,
    count(*) filter (where kind <> 'succeeded' and at > now() - interval '5 minutes') as failed_5m,
    count(*) filter (where kind = 'succeeded') as succeeded_1h,
    count(*) filter (where kind <> 'succeeded') as failed_1h,
    percentile_cont(0.5) within group (order by duration_ms) as p50_ms,
    percentile_cont(0.95) within group (order by duration_ms) as p95_ms
  from recent
  group by recent.function
), open_steps as (
  select s.function,
         count(*) filter (where s.status = 'running') as in_flight,
         count(*) filter (where s.status = 'dead') as dead_letters
  from wf.steps s
  where s.status in ('running', 'dead')
  group by s.function
)
select
  st.name as stage,
  st.queue,
  m.queue_length as depth,
  make_interval(secs => coalesce(m.oldest_msg_age_sec, 0)) as oldest_age,
  coalesce(o.in_flight, 0) as in_flight,
  st.max_concurrency,
  coalesce(p.succeeded_5m, 0) as succeeded_5m,
  coalesce(p.failed_5m, 0) as failed_5m,
  coalesce(p.succeeded_1h, 0) as succeeded_1h,
  coalesce(p.failed_1h, 0) as failed_1h,
  round(p.p50_ms) as p50_ms,
  round(p.p95_ms) as p95_ms,
  coalesce(o.dead_letters, 0) as dead_letters
from wf.stages st
cross join lateral wf.queue_metrics(st.queue) m
left join per_stage p on p.function = st.name
left join open_steps o on o.function = st.name
order by st.name;
comment on view wf.stage_health is
  'One row per stage (edge function): queue depth and oldest message age, calls in flight, successes and failed attempts in the last 5 minutes and hour, call duration p50/p95 (ms), dead steps.';

create view wf.failures as
select
  s.run_id,
  r.workflow,
  r.version,
  s.name as step,
  s.function,
  s.status,
  s.attempt,
  s.http_status,
  s.error,
  coalesce(s.finished_at, s.queued_at) as failed_at,
  r.correlation_id
from wf.steps s
join wf.runs r on r.id = s.run_id
where s.status in ('failed', 'dead') or (s.status = 'retrying' and s.error is not null)
order by coalesce(s.finished_at, s.queued_at) desc;
comment on view wf.failures is
  'Steps that failed for good (failed, dead) or are waiting to retry after an error, newest first, with the HTTP status and error text.';

create view wf.stuck as
select
  s.run_id,
  r.workflow,
  s.name as step,
  s.function,
  s.status,
  s.attempt,
  case s.status
    when 'running' then 'running past its lease: the consumer that claimed it is gone and none reclaimed it'
    else 'waiting in its queue: no consumer is taking work from this stage'
  end as reason,
  coalesce(s.lease_until, s.queued_at) as since,
  now() - coalesce(s.lease_until, s.queued_at) as age
from wf.steps s
join wf.runs r on r.id = s.run_id
where (s.status in ('queued', 'retrying')
       and s.queued_at < now() - make_interval(secs => (wf.setting('stuck_after_seconds'))::int))
   or (s.status = 'running' and s.lease_until < now() - interval '1 minute')
order by since;
comment on view wf.stuck is
  'Steps that should have moved and did not: queued longer than the stuck_after_seconds setting, or running a minute past their lease. Alert when it is not empty.';

create view wf.dead_letters as
select
  s.run_id,
  r.workflow,
  r.version,
  s.name as step,
  s.function,
  s.attempt,
  s.http_status,
  s.error,
  s.finished_at as dead_at,
  s.dlq_msg_id,
  r.correlation_id
from wf.steps s
join wf.runs r on r.id = s.run_id
where s.status = 'dead'
order by s.finished_at desc;
comment on view wf.dead_letters is
  'Dead steps (their message is in the wf_dlq queue): what failed, why, and the run to wf.retry once the cause is fixed.';

create view wf.workflow_stats as
select
  r.workflow,
  r.version,
  count(*) as runs,
  count(*) filter (where r.status = 'completed') as completed,
  count(*) filter (where r.status = 'failed') as failed,
  count(*) filter (where r.status = 'cancelled') as cancelled,
  count(*) filter (where r.status not in ('completed', 'failed', 'cancelled')) as open,
  round(count(*) filter (where r.status = 'completed')::numeric
        / nullif(count(*) filter (where r.status in ('completed', 'failed', 'cancelled')), 0), 4) as completion_rate,
  round(count(*) filter (where r.status = 'failed')::numeric
        / nullif(count(*) filter (where r.status in ('completed', 'failed', 'cancelled')), 0), 4) as failure_rate,
  avg(r.finished_at - r.created_at) filter (where r.status = 'completed') as mean_duration,
  percentile_cont(0.95) within group (order by extract(epoch from r.finished_at - r.created_at))
    filter (where r.status = 'completed') * interval '1 second' as p95_duration
from wf.runs r
group by r.workflow, r.version
order by r.workflow, r.version;
comment on view wf.workflow_stats is
  'Per workflow and version: runs, how many completed, failed, were cancelled or are open, completion and failure rate, mean and p95 duration (enqueue to finish).';

create view wf.run_history as
select e.run_id, e.id as seq, e.at, e.step, e.attempt, e.kind, e.detail
from wf.events e;
comment on view wf.run_history is
  'A run''s whole story, one row per transition (created, started, succeeded, retrying, dead, cancelled, stale answers …): filter by run_id, order by seq.';

-- wf.worker_stages: what a worker needs to know of the stages (a wf_worker login reads no tables)
create function wf.worker_stages()
returns table (name text, queue text, max_concurrency int, queue_length bigint)
language sql
stable
security definer
set search_path = ''
as $$
  select st.name, st.queue, st.max_concurrency, m.queue_length
  from wf.stages st cross join lateral pgmq.metrics(st.queue) m
$$;

-- wf.tick_scheduled: whether pg_cron runs wf.tick() here; without it the workers run it
create function wf.tick_scheduled()
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_scheduled boolean;
begin
  if not exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
    return false;
  end if;
  execute 'select exists (select 1 from cron.job where jobname = $1 and command = $2 and active)'
    into v_scheduled using 'wf-tick', 'select wf.tick()';
  return v_scheduled;
end;
$$;
