-- wf 0021: wf.workflow_stats and wf.stage_health at a million runs, without reading runs or steps;
-- how long each tick may spend on retention.
--
-- wf.workflow_hours: the runs that ended, per workflow, version and hour (completed, failed,
-- cancelled, and the completed ones' durations: their sum and a histogram of wf.duration_bucket
-- buckets), rolled up by wf.tick from the run-ending events (wf.roll_up_workflow_hours), so that
-- wf.workflow_stats reads a day as 24 rows per workflow version instead of a day's runs. Kept
-- two days.
create table wf.workflow_hours (
  hour         timestamptz not null,
  workflow     text not null,
  version      int not null,
  completed    int not null,
  failed       int not null,
  cancelled    int not null,
  -- the completed runs' durations (created to ended), in milliseconds: their sum, and
  -- {"<bucket>": count} with bucket = wf.duration_bucket(ms)
  completed_ms numeric not null,
  durations    jsonb not null,
  primary key (hour, workflow, version)
);
revoke all on wf.workflow_hours from public;

-- backfill: the runs that ended in the last day, as the roll-up would have counted them (the
-- bucket is wf.duration_bucket's, written out: a migration runs before the functions exist); the
-- roll-up goes on from here
insert into wf.workflow_hours (hour, workflow, version, completed, failed, cancelled, completed_ms, durations)
select e.hour, e.workflow, e.version, sum(e.completed)::int, sum(e.failed)::int, sum(e.cancelled)::int,
       coalesce(sum(e.ms), 0),
       coalesce(jsonb_object_agg(e.bucket, e.completed) filter (where e.bucket is not null), '{}')
from (
  select date_trunc('hour', r.finished_at) as hour, r.workflow, r.version,
         case when r.status <> 'completed' then null
              when d.ms < 1 then 0
              else floor(ln(d.ms) / ln(1.05))::int + 1 end as bucket,
         count(*) filter (where r.status = 'completed') as completed,
         count(*) filter (where r.status in ('failed', 'compensation_failed')) as failed,
         count(*) filter (where r.status = 'cancelled') as cancelled,
         sum(d.ms) filter (where r.status = 'completed') as ms
  from wf.runs r
  cross join lateral (select extract(epoch from r.finished_at - r.created_at) * 1000 as ms) d
  where r.finished_at >= date_trunc('hour', now() - interval '1 day') and r.finished_at < now()
    and r.status in ('completed', 'failed', 'compensation_failed', 'cancelled')
  group by 1, 2, 3, 4
) e
group by e.hour, e.workflow, e.version;
insert into wf.rollup_marks (name, through) values ('workflow_hours', now())
on conflict (name) do nothing;

-- wf.queue_metrics(text) gives way to wf.queue_counts(), which counts the calls in flight too
-- (from the messages alone); the views that read it are made again by the install right after
-- the migrations
drop view if exists wf.alerts;
drop view if exists wf.stage_health;
drop function if exists wf.queue_metrics(text);

-- how long each wf.tick may spend deleting (wf.apply_retention): 400 ms deletes about 2,000 runs
-- and 5,000 archived messages on a busy 2-core server; a project that finishes more per tick
-- raises it (the tick takes that much longer)
insert into wf.settings (key, value, description) values
  ('retention_budget_ms', '400', 'how long each wf.tick() may spend deleting what retention_days let go (milliseconds): raise it when the tables grow faster than the ticks delete')
on conflict (key) do nothing;
