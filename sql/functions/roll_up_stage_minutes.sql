-- wf.roll_up_stage_minutes: wf.tick's roll-up of the attempts' outcomes (wf.recent_outcomes:
-- wf.events of kind succeeded, retrying, failed, dead) into wf.stage_minutes, per stage and minute, from where
-- the last one stopped (wf.rollup_marks) up to ten seconds ago (an answer's event is written
-- at most that long before its transaction commits; the current minute's row grows with each
-- tick), at most ten minutes per call so that a tick stays short after a pause. One roll-up at
-- a time: the mark's row lock. Returns the minutes rolled up (rounded).
create or replace function wf.roll_up_stage_minutes()
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_from timestamptz;
  v_to timestamptz;
begin
  select m.through into v_from from wf.rollup_marks m where m.name = 'stage_minutes' for update;
  if v_from is null then
    -- guard: the mark's row is gone (a restore of part of the schema): start with the last hour
    v_from := date_trunc('minute', clock_timestamp()) - interval '1 hour';
    insert into wf.rollup_marks (name, through) values ('stage_minutes', v_from)
    on conflict (name) do nothing;
  end if;
  -- guard: a mark far behind (no tick for a day) starts again at the views' hour
  v_from := greatest(v_from, date_trunc('minute', clock_timestamp()) - interval '1 hour');
  v_to := least(clock_timestamp() - interval '10 seconds', v_from + interval '10 minutes');
  if v_to <= v_from then
    return 0;
  end if;

  insert into wf.stage_minutes (stage, minute, succeeded, failed, durations)
  select o.stage, o.minute, sum(o.succeeded)::int, sum(o.failed)::int,
         coalesce(jsonb_object_agg(o.bucket, o.calls) filter (where o.bucket is not null), '{}')
  from (
    select r.stage, date_trunc('minute', r.at) as minute, r.bucket,
           count(*) filter (where r.ok) as succeeded,
           count(*) filter (where not r.ok) as failed,
           count(*) as calls
    from wf.recent_outcomes(v_from) r
    where r.at < v_to
    group by 1, 2, 3
  ) o
  group by o.stage, o.minute
  on conflict (minute, stage) do update
  set succeeded = wf.stage_minutes.succeeded + excluded.succeeded,
      failed = wf.stage_minutes.failed + excluded.failed,
      durations = wf.merge_histograms(wf.stage_minutes.durations, excluded.durations);

  update wf.rollup_marks m set through = v_to where m.name = 'stage_minutes';
  delete from wf.stage_minutes sm where sm.minute < v_to - interval '1 day';
  return round(extract(epoch from v_to - v_from) / 60)::int;
end;
$$;

revoke all on function wf.roll_up_stage_minutes() from public;
