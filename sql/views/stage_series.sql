-- wf.stage_series: per stage and minute of the last hour (the current minute and the 59
-- before it), what the web dashboard charts: the queue depth and calls in flight that wf.tick
-- sampled (wf.stage_samples: the minute's latest sample) and the attempts that ended, as
-- wf.stage_health counts them (succeeded; retrying, failed or dead), with their duration's
-- p95. A row per stage and minute that has a sample or an outcome. The events are found by
-- time (BRIN events_at), then each one's step by primary key for the function.
create or replace view wf.stage_series as
with outcomes as (
  select s.function as stage, date_trunc('minute', e.at) as minute,
         count(*) filter (where e.kind = 'succeeded') as succeeded,
         count(*) filter (where e.kind <> 'succeeded') as failed,
         percentile_cont(0.95) within group (order by (e.detail ->> 'duration_ms')::numeric) as p95_ms
  from wf.events e
  -- the step's function: a primary key look-up per outcome (the limit keeps it that, so the
  -- cost follows the hour's outcomes, never the size of wf.steps or of the history)
  cross join lateral (select s.function from wf.steps s where s.run_id = e.run_id and s.name = e.step limit 1) s
  where e.at >= date_trunc('minute', now()) - interval '59 minutes'
    and e.kind in ('succeeded', 'retrying', 'failed', 'dead')
  group by 1, 2
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
  round(o.p95_ms) as p95_ms
from samples sm
full join outcomes o on o.stage = sm.stage and o.minute = sm.minute
order by 1, 2;
comment on view wf.stage_series is
  'Per stage and minute of the last hour (a row where there is data): queue depth and calls in flight from wf.tick''s latest sample in the minute (null without one), attempts that succeeded and that failed (retrying, failed, dead) in the minute and their duration p95 (ms). Ordered by stage, minute.';

revoke all on wf.stage_series from public;
grant select on wf.stage_series to wf_reader, wf_admin;
