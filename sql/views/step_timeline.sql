-- wf.step_timeline: one row per step attempt, reconstructed from wf.events (an attempt is
-- not a row of its own), with when it was queued, started and finished and how it ended.
create or replace view wf.step_timeline as
select
  e.run_id,
  e.step,
  e.attempt,
  case o.kind
    when 'succeeded' then 'succeeded'
    when 'retrying' then 'retrying'
    when 'failed' then 'failed'
    when 'dead' then 'dead'
    when 'skipped' then 'skipped'
    when 'cancelled' then 'cancelled'
    when 'attempt_lost' then 'lost'
    else 'running'
  end as status,
  q.queued_at,
  e.at as started_at,
  o.at as finished_at,
  o.at - e.at as duration,
  (o.detail ->> 'http_status')::int as http_status,
  o.detail ->> 'error' as error
from wf.events e
left join lateral (
  select o.kind, o.at, o.detail from wf.events o
  where o.run_id = e.run_id and o.step = e.step and o.attempt = e.attempt and o.id > e.id
    and o.kind in ('succeeded', 'retrying', 'failed', 'dead', 'skipped', 'cancelled', 'attempt_lost')
  order by o.id
  limit 1
) o on true
-- an attempt was queued by the latest event before it that scheduled it: the one whose
-- detail.queued names the step (with its delay), or the step's own retry or lost attempt
left join lateral (
  select q.at + make_interval(secs => coalesce((q.detail -> 'queued' ->> e.step)::int,
                                               (q.detail ->> 'delay_seconds')::int, 0)) as queued_at
  from wf.events q
  where q.run_id = e.run_id and q.id < e.id
    and ((q.step = e.step and q.kind in ('retrying', 'attempt_lost')) or q.detail -> 'queued' ? e.step)
  order by q.id desc
  limit 1
) q on true
where e.kind = 'started';
comment on view wf.step_timeline is
  'One row per step attempt: when it was queued, started and finished, how it ended, the HTTP status and the error. Filter by run_id.';

revoke all on wf.step_timeline from public;
grant select on wf.step_timeline to wf_reader, wf_admin;
