-- wf.recent_run_ends: the runs that ended (wf.events of kind run_completed, run_failed,
-- run_cancelled) since p_since and within the last day (from its first hour) — what wf.tick has not rolled up into
-- wf.workflow_hours yet, for wf.workflow_stats: each one's workflow, version, time, outcome, and for
-- a completed run its duration (created to ended, ms) and its wf.duration_bucket. A run that
-- failed with compensations counts once, at run_failed (its later run_compensated or run_compensation_failed ends the
-- same failure). A function so that the query is planned for the real p_since (seconds ago,
-- BRIN events_at), as wf.recent_outcomes is. Security definer: readers have no access to wf.events.
create or replace function wf.recent_run_ends(p_since timestamptz)
returns table (workflow text, version int, at timestamptz, outcome text, ms numeric, bucket int)
language plpgsql
stable
security definer
-- a few seconds of runs ending (the planner of its callers takes this as the estimate)
rows 50
set search_path = ''
as $$
begin
  return query
  select r.workflow, r.version, e.at,
         case e.kind when 'run_completed' then 'completed' when 'run_failed' then 'failed' else 'cancelled' end,
         d.ms::numeric,
         -- wf.duration_bucket, written out in float8 (see wf.recent_outcomes)
         case when d.ms is null then null when d.ms < 1 then 0
              else floor(ln(d.ms) / ln(1.05::float8))::int + 1 end
  from wf.events e
  cross join lateral (select r.workflow, r.version, r.created_at from wf.runs r where r.id = e.run_id limit 1) r
  cross join lateral (select case when e.kind = 'run_completed'
                                  then extract(epoch from e.at - r.created_at)::float8 * 1000 end as ms) d
  where e.at >= greatest(p_since, date_trunc('hour', now() - interval '1 day'))
    and e.kind in ('run_completed', 'run_failed', 'run_cancelled');
end;
$$;

revoke all on function wf.recent_run_ends(timestamptz) from public;
grant execute on function wf.recent_run_ends(timestamptz) to wf_reader, wf_admin;
