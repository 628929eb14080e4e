-- wf.stuck: steps that should have moved and did not — queued longer than stuck_after_seconds
-- (wf.settings), or running a minute past their lease. wf.tick marks them once in events.
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
from wf.steps s
join wf.runs r on r.id = s.run_id
where (s.status in ('queued', 'retrying')
       and s.queued_at < now() - make_interval(secs => (wf.setting('stuck_after_seconds'))::int))
   or (s.status = 'running' and s.lease_until < now() - interval '1 minute')
order by since;
comment on view wf.stuck is
  'Steps that should have moved and did not: queued longer than the stuck_after_seconds setting, or running a minute past their lease. Alert when it is not empty.';

revoke all on wf.stuck from public;
grant select on wf.stuck to wf_reader, wf_admin;
