-- wf.my_runs: the app-facing read path on Supabase. Security invoker (PostgreSQL 15), so the
-- caller's privileges and row level security apply, and it filters by owner = wf.auth_uid()
-- on top (defence in depth). `authenticated` gets select on it from wf.grant_app_access().
create or replace view wf.my_runs with (security_invoker = true) as
select
  r.id as run_id,
  r.workflow,
  r.version,
  r.status,
  format('%s/%s', coalesce(s.done, 0), coalesce(s.total, 0)) as progress,
  r.input,
  r.correlation_id,
  r.error,
  r.failed_step,
  r.run_at,
  r.created_at,
  r.started_at,
  r.finished_at,
  r.owner,
  coalesce(s.steps, '[]') as steps,
  r.output,
  r.parent_run_id
from wf.runs r
left join lateral (
  select
    count(*) filter (where st.status in ('succeeded', 'skipped', 'failed')) as done,
    count(*) as total,
    jsonb_agg(jsonb_build_object(
      'name', st.name, 'function', st.function, 'status', st.status, 'attempt', st.attempt,
      'queued_at', st.queued_at, 'started_at', st.started_at, 'finished_at', st.finished_at,
      'output', st.output, 'error', st.error)
      order by st.queued_at nulls last, st.name) as steps
  from wf.steps st
  where st.run_id = r.id
) s on true
where r.owner = (select wf.auth_uid())
order by r.created_at desc;
comment on view wf.my_runs is
  'For apps: the runs of the signed-in user (owner = auth.uid()), newest first, with progress, steps and output. Security invoker: row level security applies.';

revoke all on wf.my_runs from public;
