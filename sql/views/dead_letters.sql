-- wf.dead_letters: the dead steps (each has its message in the wf_dlq queue, dlq_msg_id),
-- newest first, with the run to wf.retry once the cause is fixed. Read from wf.steps, which
-- keeps the error and HTTP status the DLQ message only summarises.
create or replace view wf.dead_letters as
select
  s.run_id,
  r.workflow,
  r.version,
  s.name as step,
  s.function,
  s.attempt,
  s.http_status,
  s.error,
  s.finished_at as dead_at,
  s.dlq_msg_id,
  r.correlation_id
from wf.steps s
join wf.runs r on r.id = s.run_id
where s.status = 'dead'
order by s.finished_at desc;
comment on view wf.dead_letters is
  'Dead steps (their message is in the wf_dlq queue): what failed, why, and the run to wf.retry once the cause is fixed.';

revoke all on wf.dead_letters from public;
grant select on wf.dead_letters to wf_reader, wf_admin;
