-- wf 0018: what the web dashboard reads (issue 13; it reads only views and public functions).
--
-- Keyset paging of runs, newest first, with or without a filter: `(created_at, id) < ($t, $id)
-- order by created_at desc, id desc limit 50` walks one of these indexes backwards and stops
-- after the page, however many runs there are. (created_at, id) replaces the index on
-- created_at alone, which nothing names. The status index is the one a status update must
-- write (it is not HOT): filtering by status without it would read every run of the other
-- statuses between two pages of a rare one.
drop index wf.runs_created_at;
create index runs_created on wf.runs (created_at, id);
create index runs_status_created on wf.runs (status, created_at, id);
create index runs_workflow_created on wf.runs (workflow, created_at, id);
create index runs_correlation_created on wf.runs (correlation_id, created_at, id) where correlation_id is not null;
-- the runs per status of one workflow (the runs page's counts under a workflow filter), counted
-- up to a cap from the index alone
create index runs_workflow_status_created on wf.runs (workflow, status, created_at, id);
-- the newest dead letters (wf.dead_letters): the events that made a step dead, insert-only and
-- partial, so it costs nothing on the hot path; the step tells whether it is still dead
create index events_dead on wf.events (id) where kind = 'dead';

-- one sample per stage, written by wf.tick at most every 30 seconds and kept for a day: the
-- queue depth (all its priority bands) and the calls in flight, for wf.stage_series' charts
-- (pgmq keeps no history of its depth). Private like every table: the views read it.
create table wf.stage_samples (
  stage     text not null,
  at        timestamptz not null,
  depth     bigint,
  in_flight int not null,
  primary key (stage, at)
);
-- the latest sample (tick's 30-second guard), the last hour (the view), older than a day (tick)
create index stage_samples_at on wf.stage_samples (at);
revoke all on wf.stage_samples from public;
