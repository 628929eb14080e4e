-- wf.stage_series: per stage and minute of the last hour (the current minute and the 59
-- before it), what the web dashboard charts: the queue depth and calls in flight that wf.tick
-- sampled (wf.stage_samples: the minute's latest sample) and the attempts that ended, as
-- wf.stage_health counts them (succeeded; retrying, failed or dead), with their duration's p95
-- (within 2.5%). A row per stage and minute that has a sample or an outcome. The outcomes come
-- from wf.stage_minutes (wf.tick's roll-up) and, for the seconds not rolled up yet, from
-- wf.events (wf.recent_outcomes).
create or replace view wf.stage_series as
with mark as (
  select coalesce((select m.through from wf.rollup_marks m where m.name = 'stage_minutes'), '-infinity') as through
), minutes as (
  select sm.stage, sm.minute, sm.succeeded::bigint as succeeded, sm.failed::bigint as failed, sm.durations
  from wf.stage_minutes sm
  where sm.minute >= date_trunc('minute', now()) - interval '59 minutes' and sm.minute < (select mark.through from mark)
  union all
  select r.stage, r.minute, sum(r.succeeded)::bigint, sum(r.failed)::bigint,
         coalesce(jsonb_object_agg(r.bucket, r.calls) filter (where r.bucket is not null), '{}')
  from (
    select o.stage, date_trunc('minute', o.at) as minute, o.bucket,
           count(*) filter (where o.ok) as succeeded,
           count(*) filter (where not o.ok) as failed,
           count(*) as calls
    -- the outcomes not rolled up yet (the first of the 60 minutes may start before the hour)
    from wf.recent_outcomes((select mark.through from mark)) o
    where o.at >= date_trunc('minute', now()) - interval '59 minutes'
    group by 1, 2, 3
  ) r
  group by r.stage, r.minute
), outcomes as (
  select m.stage, m.minute, sum(m.succeeded)::bigint as succeeded, sum(m.failed)::bigint as failed,
         wf.duration_percentile(
           (select jsonb_object_agg(b.key, b.n)
            from (select h.key, sum(h.value::bigint) as n
                  from unnest(array_agg(m.durations)) as x(durations)
                  cross join lateral jsonb_each_text(x.durations) h
                  group by h.key) b), 0.95) as p95_ms
  from minutes m
  group by m.stage, m.minute
), samples as (
  select distinct on (ss.stage, date_trunc('minute', ss.at))
         ss.stage, date_trunc('minute', ss.at) as minute, ss.depth, ss.in_flight
  from wf.stage_samples ss
  where ss.at >= date_trunc('minute', now()) - interval '59 minutes'
  order by ss.stage, date_trunc('minute', ss.at), ss.at desc
)
select
  coalesce(sm.stage, o.stage) as stage,
  coalesce(sm.minute, o.minute) as minute,
  sm.depth,
  sm.in_flight,
  coalesce(o.succeeded, 0) as succeeded,
  coalesce(o.failed, 0) as failed,
  round(o.p95_ms)::float8 as p95_ms
from samples sm
full join outcomes o on o.stage = sm.stage and o.minute = sm.minute
order by 1, 2;
comment on view wf.stage_series is
  'Per stage and minute of the last hour (a row where there is data): queue depth and calls in flight from wf.tick''s latest sample in the minute (null without one), attempts that succeeded and that failed (retrying, failed, dead) in the minute and their duration p95 (ms, within 2.5%). Ordered by stage, minute.';

revoke all on wf.stage_series from public;
grant select on wf.stage_series to wf_reader, wf_admin;
