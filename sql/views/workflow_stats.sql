-- wf.workflow_stats: per workflow and version, the runs created in the last day by status,
-- completion and failure rate and duration: is the new version better than the old one? A day,
-- not all time: the runs are found by time (index runs_created), so the view costs a day's runs
-- however many are kept (a million runs over 30 days: 1/30 of them).
create or replace view wf.workflow_stats as
select
  r.workflow,
  r.version,
  count(*) as runs,
  count(*) filter (where r.status = 'completed') as completed,
  count(*) filter (where r.status in ('failed', 'compensation_failed')) as failed,
  count(*) filter (where r.status = 'cancelled') as cancelled,
  count(*) filter (where r.status not in ('completed', 'failed', 'cancelled', 'compensation_failed')) as open,
  round(count(*) filter (where r.status = 'completed')::numeric
        / nullif(count(*) filter (where r.status in ('completed', 'failed', 'cancelled', 'compensation_failed')), 0), 4)
    as completion_rate,
  round(count(*) filter (where r.status in ('failed', 'compensation_failed'))::numeric
        / nullif(count(*) filter (where r.status in ('completed', 'failed', 'cancelled', 'compensation_failed')), 0), 4)
    as failure_rate,
  avg(r.finished_at - r.created_at) filter (where r.status = 'completed') as mean_duration,
  percentile_cont(0.95) within group (order by extract(epoch from r.finished_at - r.created_at))
    filter (where r.status = 'completed') * interval '1 second' as p95_duration
from wf.runs r
where r.created_at > now() - interval '1 day'
group by r.workflow, r.version
order by r.workflow, r.version;
comment on view wf.workflow_stats is
  'Per workflow and version, over the runs created in the last day: runs, how many completed, failed (compensation_failed included), were cancelled or are open, completion and failure rate, mean and p95 duration (enqueue to finish).';

revoke all on wf.workflow_stats from public;
grant select on wf.workflow_stats to wf_reader, wf_admin;
