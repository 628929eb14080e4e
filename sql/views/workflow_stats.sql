-- wf.workflow_stats: per workflow and version, the runs that ended in the last day (from the
-- start of its first hour) by outcome, the runs open now, completion and failure rate and the
-- completed runs' duration: is the new version better than the old one? The ended runs come from
-- wf.workflow_hours, which wf.tick rolls up per hour from the run-ending events, plus the
-- events since its last roll-up (wf.recent_run_ends); the open ones from the runs by status
-- (index runs_status_created). So the view costs the runs open and a day's hours, however many
-- runs are kept.
create or replace view wf.workflow_stats as
with mark as (
  select coalesce((select m.through from wf.rollup_marks m where m.name = 'workflow_hours'), '-infinity') as through
), recent as (
  select e.workflow, e.version, e.outcome, e.ms, e.bucket from wf.recent_run_ends((select mark.through from mark)) e
), ended as (
  select h.workflow, h.version, h.completed::bigint as completed, h.failed::bigint as failed,
         h.cancelled::bigint as cancelled, h.completed_ms
  from wf.workflow_hours h
  where h.hour >= date_trunc('hour', now() - interval '1 day')
  union all
  select e.workflow, e.version, count(*) filter (where e.outcome = 'completed'),
         count(*) filter (where e.outcome = 'failed'), count(*) filter (where e.outcome = 'cancelled'),
         coalesce(sum(e.ms), 0)
  from recent e
  group by e.workflow, e.version
), per_version as (
  select e.workflow, e.version, sum(e.completed)::bigint as completed, sum(e.failed)::bigint as failed,
         sum(e.cancelled)::bigint as cancelled, sum(e.completed_ms) as completed_ms
  from ended e
  group by e.workflow, e.version
), durations as (
  -- the completed runs' histogram: the rolled-up hours' and the recent runs' buckets
  select d.workflow, d.version, jsonb_object_agg(d.bucket, d.runs) as histogram
  from (
    select b.workflow, b.version, b.bucket, sum(b.runs) as runs
    from (
      select h.workflow, h.version, x.key as bucket, x.value::bigint as runs
      from wf.workflow_hours h
      cross join lateral jsonb_each_text(h.durations) x
      where h.hour >= date_trunc('hour', now() - interval '1 day')
      union all
      select e.workflow, e.version, e.bucket::text, count(*)
      from recent e
      where e.bucket is not null
      group by 1, 2, 3
    ) b
    group by b.workflow, b.version, b.bucket
  ) d
  group by d.workflow, d.version
), open as (
  select r.workflow, r.version, count(*) as runs
  from wf.runs r
  where r.status in ('scheduled', 'pending', 'running', 'paused', 'compensating')
  group by r.workflow, r.version
)
select
  coalesce(p.workflow, o.workflow) as workflow,
  coalesce(p.version, o.version) as version,
  coalesce(p.completed + p.failed + p.cancelled, 0) + coalesce(o.runs, 0) as runs,
  coalesce(p.completed, 0) as completed,
  coalesce(p.failed, 0) as failed,
  coalesce(p.cancelled, 0) as cancelled,
  coalesce(o.runs, 0) as open,
  round(p.completed::numeric / nullif(p.completed + p.failed + p.cancelled, 0), 4) as completion_rate,
  round(p.failed::numeric / nullif(p.completed + p.failed + p.cancelled, 0), 4) as failure_rate,
  (p.completed_ms / nullif(p.completed, 0))::float8 * interval '1 millisecond' as mean_duration,
  wf.duration_percentile(d.histogram, 0.95)::float8 * interval '1 millisecond' as p95_duration
from per_version p
full join open o on o.workflow = p.workflow and o.version = p.version
left join durations d on d.workflow = coalesce(p.workflow, o.workflow) and d.version = coalesce(p.version, o.version)
where coalesce(p.completed + p.failed + p.cancelled, 0) + coalesce(o.runs, 0) > 0
order by 1, 2;
comment on view wf.workflow_stats is
  'Per workflow and version: the runs that ended in the last day (from the start of its first hour: completed, failed with compensation_failed included, cancelled), the runs open now, the ended runs'' completion and failure rate, and the completed runs'' mean and p95 duration (created to ended; p95 within 2.5%). A run retried after it ended counts each time it ends. The ended runs are rolled up per hour by wf.tick (wf.workflow_hours).';

revoke all on wf.workflow_stats from public;
grant select on wf.workflow_stats to wf_reader, wf_admin;
