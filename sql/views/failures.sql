-- wf.failures: the steps that need a look — failed for good, dead, or retrying after an
-- error — newest first, so `select * from wf.failures limit 20` answers "what is broken".
-- Found through the events that failed them (a partial index on wf.events, newest first, so a
-- page costs the same at a million runs), each step then by its key; a step that moved on since
-- (retried and succeeded, or failed again at a later attempt) shows once, at its latest failure.
create or replace view wf.failures as
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
  r.correlation_id,
  r.status as run_status
from wf.events e
cross join lateral (
  select s.run_id, s.name, s.function, s.status, s.attempt, s.http_status, s.error, s.finished_at, s.queued_at
  from wf.steps s
  where s.run_id = e.run_id and s.name = e.step and s.attempt = e.attempt and s.status = e.kind
    and (s.status in ('failed', 'dead') or s.error is not null)
  limit 1
) s
cross join lateral (select r.workflow, r.version, r.correlation_id, r.status from wf.runs r where r.id = e.run_id limit 1) r
where e.kind in ('failed', 'dead', 'retrying')
order by e.id desc;
comment on view wf.failures is
  'Steps that failed for good (failed, dead) or are waiting to retry after an error, newest first, with the HTTP status and error text, and the run''s status (a dead compensation: compensation_failed).';

revoke all on wf.failures from public;
grant select on wf.failures to wf_reader, wf_admin;
