-- wf.stage_health: one row per stage (edge function) — queue depth and age from pgmq through
-- wf.queue_metrics, calls in flight and recent outcomes from wf.events — so a slow or failing
-- function shows where its own queue backs up.
create or replace view wf.stage_health as
with recent as (
  select s.function, e.kind, e.at, (e.detail ->> 'duration_ms')::numeric as duration_ms
  from wf.events e
  -- each outcome's step by its key (as a plain join the planner hashed every step)
  cross join lateral (select s.function from wf.steps s where s.run_id = e.run_id and s.name = e.step limit 1) s
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
    percentile_cont(0.95) within group (order by duration_ms) as p95_ms,
    count(*) filter (where at > now() - interval '1 minute') / 60.0 as per_second_1m
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
  coalesce(o.dead_letters, 0) as dead_letters,
  st.paused,
  st.rate_per_second,
  st.burst,
  round(coalesce(p.per_second_1m, 0), 2) as current_rate
from wf.stages st
cross join lateral wf.queue_metrics(st.queue) m
left join per_stage p on p.function = st.name
left join open_steps o on o.function = st.name
order by st.name;
comment on view wf.stage_health is
  'One row per stage (edge function): queue depth and oldest message age, calls in flight, successes and failed attempts in the last 5 minutes and hour, call duration p50/p95 (ms), dead steps, whether it is paused (wf.pause_stage), its limits across workers (max_concurrency, rate_per_second, burst: wf.configure_stage) and the calls answered per second over the last minute (current_rate).';

revoke all on wf.stage_health from public;
grant select on wf.stage_health to wf_reader, wf_admin;
