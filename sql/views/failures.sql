-- wf.failures: the steps that need a look — failed for good, dead, or retrying after an
-- error — newest first, so `select * from wf.failures limit 20` answers "what is broken".
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
from wf.steps s
join wf.runs r on r.id = s.run_id
where s.status in ('failed', 'dead') or (s.status = 'retrying' and s.error is not null)
order by coalesce(s.finished_at, s.queued_at) desc;
comment on view wf.failures is
  'Steps that failed for good (failed, dead) or are waiting to retry after an error, newest first, with the HTTP status and error text, and the run''s status (a dead compensation: compensation_failed).';

revoke all on wf.failures from public;
grant select on wf.failures to wf_reader, wf_admin;
