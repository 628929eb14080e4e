-- wf.dead_letters: the dead steps (each has its message in the wf_dlq queue, dlq_msg_id),
-- newest first, with the run to wf.retry once the cause is fixed. Found through the events that
-- made them dead (a partial index on wf.events, so the newest page costs the same at a million
-- runs) and read from wf.steps, which keeps the error and HTTP status the DLQ message only
-- summarises; a step retried since (no longer dead, or dead again at a later attempt) shows once.
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
  r.correlation_id,
  e.id as seq
from wf.events e
-- the step and the run by their keys, one look-up per event, newest first until the limit: as
-- plain joins the planner, expecting few rows, hashed every run
cross join lateral (
  select s.run_id, s.name, s.function, s.attempt, s.http_status, s.error, s.finished_at, s.dlq_msg_id
  from wf.steps s
  where s.run_id = e.run_id and s.name = e.step and s.attempt = e.attempt and s.status = 'dead'
  limit 1
) s
cross join lateral (select r.workflow, r.version, r.correlation_id from wf.runs r where r.id = e.run_id limit 1) r
where e.kind = 'dead'
order by e.id desc;
comment on view wf.dead_letters is
  'Dead steps (their message is in the wf_dlq queue), newest first: what failed, why, and the run to wf.retry once the cause is fixed. seq (the event that made the step dead) pages them: where seq < the last one shown.';
revoke all on wf.dead_letters from public;
grant select on wf.dead_letters to wf_reader, wf_admin;
