-- wf.runs_overview: one row per run, newest first — the first thing to look at. Progress and
-- the current steps are computed per run from wf.steps (a run has few steps), so the view
-- stays cheap with a limit or a filter on run_id, workflow or status. current_steps says what a
-- step waits for (`approve: waiting for signal "approved"`, `remind: not before …`).
create or replace view wf.runs_overview as
select
  r.id as run_id,
  r.workflow,
  r.version,
  r.status,
  format('%s/%s', agg.done, agg.total) as progress,
  coalesce(agg.current_steps,
           case when r.held then (select format('waiting for concurrency key %s=%s', d.definition -> 'concurrency' ->> 'key',
                                                r.concurrency_key)
                                  from wf.definitions d where d.workflow = r.workflow and d.version = r.version) end)
    as current_steps,
  agg.attempts,
  coalesce(r.error, agg.last_error) as last_error,
  coalesce(r.failed_step, agg.last_error_step) as failed_step,
  r.correlation_id,
  r.created_at,
  r.started_at,
  r.finished_at,
  coalesce(r.finished_at, now()) - r.started_at as duration,
  r.parent_run_id,
  r.output
from wf.runs r
cross join lateral (
  select
    count(*) filter (where s.status in ('succeeded', 'skipped', 'failed') and s.map_step is null
                       and s.compensates is null) as done,
    count(*) filter (where s.map_step is null and s.compensates is null) as total,
    string_agg(case
                 when d.kind = 'wait_for' and s.status = 'running' then format('%s: waiting for signal "%s"', s.name, d.action)
                 when d.kind = 'workflow' and s.status = 'running' and s.child_run_id is not null
                   then format('%s: waiting for child run %s', s.name, s.child_run_id)
                 when s.status = 'queued' and s.queued_at > now() + interval '1 second'
                   then format('%s: not before %s', s.name, to_char(s.queued_at, 'YYYY-MM-DD HH24:MI:SS TZ'))
                 -- a map step waiting for its items: how many are final
                 when s.status = 'running' and s.lease_until is null and d.for_each is not null
                   then (select format('%s: %s/%s items', s.name,
                                       count(*) filter (where i.status in ('succeeded', 'failed', 'skipped', 'dead', 'cancelled')),
                                       count(*))
                         from wf.steps i where i.run_id = s.run_id and i.map_step = s.name)
                 else s.name || ' (' || s.status || ')' end, ', ')
      filter (where s.status in ('queued', 'running', 'retrying') and s.map_step is null) as current_steps,
    coalesce(sum(s.attempt), 0)::int as attempts,
    (array_agg(s.error order by s.finished_at desc nulls first) filter (where s.error is not null))[1] as last_error,
    (array_agg(s.name order by s.finished_at desc nulls first) filter (where s.error is not null))[1] as last_error_step
  from wf.steps s
  -- what a step of another kind waits for (function steps need no look-up)
  left join wf.definition_steps d
    on (s.function = '_wf' or s.lease_until is null) and s.status = 'running'
       and d.workflow = r.workflow and d.version = r.version and d.name = s.name
  where s.run_id = r.id
) agg
order by r.created_at desc;
comment on view wf.runs_overview is
  'One row per run, newest first: status, progress (done/total steps), what runs now or waits (for a signal, a child run, a time), attempts, the last error and the step it came from, the parent run of a child, the output of a completed run.';

revoke all on wf.runs_overview from public;
grant select on wf.runs_overview to wf_reader, wf_admin;
