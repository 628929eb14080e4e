-- wf.stage_health: one row per stage (edge function) — queue depth and age, and calls in flight,
-- counted in its queues by wf.queue_counts (they hold only the work not done: no step is looked
-- up), the last 5 minutes' and hour's outcomes, dead steps (the wf_dlq queue) — so a slow or
-- failing function shows where its own queue backs up. Outcomes come from wf.stage_minutes,
-- which wf.tick keeps, and for the seconds since its last roll-up from wf.events (each names its
-- stage): the cost follows the stages, the work waiting and the time since the last tick, not
-- the number of runs.
create or replace view wf.stage_health as
with mark as (
  select coalesce((select m.through from wf.rollup_marks m where m.name = 'stage_minutes'), '-infinity') as through
), recent as (
  -- the outcomes not rolled up yet
  select o.stage, o.at, o.ok, o.bucket from wf.recent_outcomes((select mark.through from mark)) o
), outcomes as (
  select recent.stage,
         count(*) filter (where recent.ok and recent.at > now() - interval '5 minutes') as succeeded_5m,
         count(*) filter (where not recent.ok and recent.at > now() - interval '5 minutes') as failed_5m,
         count(*) filter (where recent.ok) as succeeded_1h,
         count(*) filter (where not recent.ok) as failed_1h,
         count(*) filter (where recent.at > now() - interval '1 minute') as answered_1m
  from recent
  group by recent.stage
  union all
  select sm.stage,
         sum(sm.succeeded) filter (where sm.minute >= now() - interval '5 minutes'),
         sum(sm.failed) filter (where sm.minute >= now() - interval '5 minutes'),
         sum(sm.succeeded),
         sum(sm.failed),
         -- the share of a rolled-up minute that falls in the last 60 seconds (spread evenly)
         sum((sm.succeeded + sm.failed)
             * greatest(0, extract(epoch from least(sm.minute + interval '1 minute', (select mark.through from mark))
                                              - greatest(sm.minute, now() - interval '1 minute')))
             / greatest(1, extract(epoch from least(sm.minute + interval '1 minute', (select mark.through from mark))
                                              - sm.minute)))
           filter (where sm.minute > now() - interval '2 minutes')
  from wf.stage_minutes sm
  where sm.minute >= date_trunc('minute', now() - interval '1 hour') and sm.minute < (select mark.through from mark)
  group by sm.stage
), durations as (
  -- the hour's histogram per stage: the rolled-up minutes' and the recent calls' buckets
  select d.stage, jsonb_object_agg(d.bucket, d.calls) as histogram
  from (
    select b.stage, b.bucket, sum(b.calls) as calls
    from (
      select recent.stage, recent.bucket::text as bucket, count(*) as calls
      from recent where recent.bucket is not null group by 1, 2
      union all
      select sm.stage, h.key, sum(h.value::bigint)
      from wf.stage_minutes sm
      cross join lateral jsonb_each_text(sm.durations) h
      where sm.minute >= date_trunc('minute', now() - interval '1 hour') and sm.minute < (select mark.through from mark)
      group by 1, 2
    ) b
    group by b.stage, b.bucket
  ) d
  group by d.stage
), per_stage as (
  select o.stage, sum(o.succeeded_5m)::bigint as succeeded_5m, sum(o.failed_5m)::bigint as failed_5m,
         sum(o.succeeded_1h)::bigint as succeeded_1h, sum(o.failed_1h)::bigint as failed_1h,
         sum(o.answered_1m) as answered_1m
  from outcomes o
  group by o.stage
)
select
  st.name as stage,
  st.queue,
  coalesce(q.depth, 0) as depth,
  make_interval(secs => coalesce(q.oldest_age_sec, 0)) as oldest_age,
  coalesce(q.in_flight, 0) as in_flight,
  st.max_concurrency,
  coalesce(p.succeeded_5m, 0) as succeeded_5m,
  coalesce(p.failed_5m, 0) as failed_5m,
  coalesce(p.succeeded_1h, 0) as succeeded_1h,
  coalesce(p.failed_1h, 0) as failed_1h,
  round(wf.duration_percentile(d.histogram, 0.5))::float8 as p50_ms,
  round(wf.duration_percentile(d.histogram, 0.95))::float8 as p95_ms,
  coalesce(dl.dead, 0) as dead_letters,
  st.paused,
  st.rate_per_second,
  st.burst,
  round(coalesce(p.answered_1m, 0) / 60.0, 2) as current_rate
from wf.stages st
left join wf.queue_counts() q on q.stage = st.name
left join per_stage p on p.stage = st.name
left join durations d on d.stage = st.name
left join wf.dead_letter_counts() dl on dl.function = st.name
order by st.name;
comment on view wf.stage_health is
  'One row per stage (edge function): queue depth and oldest message age, calls in flight, successes and failed attempts in the last 5 minutes and hour, call duration p50/p95 (ms, within 2.5%: a histogram of 5% buckets), dead steps (in the wf_dlq queue), whether it is paused (wf.pause_stage), its limits across workers (max_concurrency, rate_per_second, burst: wf.configure_stage) and the calls answered per second over the last minute (current_rate). What wf.tick rolled up (wf.stage_minutes) counts by minute: the 5-minute and hour windows start at a minute, and current_rate spreads a rolled-up minute evenly.';

revoke all on wf.stage_health from public;
grant select on wf.stage_health to wf_reader, wf_admin;
