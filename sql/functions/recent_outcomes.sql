-- wf.recent_outcomes: the attempts' outcomes (wf.events of kind succeeded, retrying, failed,
-- dead) since p_since and within the last hour (from its first minute) — what wf.tick has not
-- rolled up into wf.stage_minutes yet (wf.roll_up_stage_minutes rolls up what this returns), for
-- wf.stage_health and wf.stage_series: each one's stage, time, whether
-- it succeeded, and its duration's histogram bucket. A function so that the query is planned for
-- the real p_since (seconds ago, found by BRIN events_at), not for "the last hour" a view's
-- planner would assume, which costs a just-in-time compilation longer than the query.
-- Security definer: readers have no access to wf.events.
create or replace function wf.recent_outcomes(p_since timestamptz)
returns table (stage text, at timestamptz, ok boolean, bucket int)
language plpgsql
stable
security definer
-- a few seconds of answers (the view's planner takes this as the estimate)
rows 200
set search_path = ''
as $$
begin
  return query
  select coalesce(e.stage, s.function), e.at, e.kind = 'succeeded',
         -- wf.duration_bucket, written out in float8: a function with its own search_path is
         -- never inlined (a configuration save and restore per call) and numeric's ln is slow;
         -- this runs once per answer (tests/sql/test_operations.py checks that both agree)
         case when d.ms is null then null when d.ms < 1 then 0
              else floor(ln(d.ms) / ln(1.05::float8))::int + 1 end
  from wf.events e
  cross join lateral (select (e.detail ->> 'duration_ms')::float8 as ms) d
  -- the stage: the event's own, or (an outcome written before wf 0019) its step's, by key
  left join lateral (select s.function from wf.steps s
                     where e.stage is null and s.run_id = e.run_id and s.name = e.step limit 1) s on true
  where e.at >= greatest(p_since, date_trunc('minute', now() - interval '1 hour'))
    and e.kind in ('succeeded', 'retrying', 'failed', 'dead');
end;
$$;

revoke all on function wf.recent_outcomes(timestamptz) from public;
grant execute on function wf.recent_outcomes(timestamptz) to wf_reader, wf_admin;
