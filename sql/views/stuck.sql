-- wf.stuck: steps that should have moved and did not — queued longer than stuck_after_seconds
-- (wf.settings), or running a minute past their lease. wf.tick marks them once in events.
-- Such a step still has its message in its stage's queue (wf.queue_messages, which holds only
-- the work not done), due since as long (a queued step's message is due when the step is, a
-- running one's when its lease ends), so the view reads those messages and each one's step by
-- its key: its cost follows the stuck backlog, not the number of steps ever run.
create or replace view wf.stuck as
select
  s.run_id,
  r.workflow,
  s.name as step,
  s.function,
  s.status,
  s.attempt,
  case s.status
    when 'running' then 'running past its lease: the consumer that claimed it is gone and none reclaimed it'
    else 'waiting in its queue: no consumer is taking work from this stage'
  end as reason,
  coalesce(s.lease_until, s.queued_at) as since,
  now() - coalesce(s.lease_until, s.queued_at) as age
from wf.queue_messages(
       now() - least(make_interval(secs => (wf.setting('stuck_after_seconds'))::int), interval '1 minute')) m
cross join lateral (
  select s.run_id, s.name, s.function, s.status, s.attempt, s.lease_until, s.queued_at
  from wf.steps s
  where s.run_id = m.run_id and s.name = m.step and s.msg_id = m.msg_id
  limit 1
) s
cross join lateral (select r.workflow from wf.runs r where r.id = s.run_id limit 1) r
where (s.status in ('queued', 'retrying')
       and s.queued_at < now() - make_interval(secs => (wf.setting('stuck_after_seconds'))::int))
   or (s.status = 'running' and s.lease_until < now() - interval '1 minute')
order by since;
comment on view wf.stuck is
  'Steps that should have moved and did not: queued longer than the stuck_after_seconds setting, or running a minute past their lease. Alert when it is not empty.';

revoke all on wf.stuck from public;
grant select on wf.stuck to wf_reader, wf_admin;
