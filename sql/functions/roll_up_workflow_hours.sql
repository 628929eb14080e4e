-- wf.roll_up_workflow_hours: wf.tick's roll-up of the runs that ended (wf.recent_run_ends) into
-- wf.workflow_hours, per workflow, version and hour, from where the last one stopped
-- (wf.rollup_marks) up to ten seconds ago (an event is written at most that long before its
-- transaction commits), at most an hour per call so that a tick stays short after a pause.
-- One roll-up at a time: the mark's row lock. Keeps two days. Returns the minutes rolled up
-- (rounded).
create or replace function wf.roll_up_workflow_hours()
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_from timestamptz;
  v_to timestamptz;
begin
  select m.through into v_from from wf.rollup_marks m where m.name = 'workflow_hours' for update;
  if v_from is null then
    -- guard: the mark's row is gone (a restore of part of the schema): start with the last day
    v_from := date_trunc('hour', clock_timestamp()) - interval '1 day';
    insert into wf.rollup_marks (name, through) values ('workflow_hours', v_from)
    on conflict (name) do nothing;
  end if;
  -- guard: a mark far behind (no tick for days) starts again at the view's day
  v_from := greatest(v_from, date_trunc('hour', clock_timestamp()) - interval '1 day');
  v_to := least(clock_timestamp() - interval '10 seconds', v_from + interval '1 hour');
  if v_to <= v_from then
    return 0;
  end if;

  insert into wf.workflow_hours (hour, workflow, version, completed, failed, cancelled, completed_ms, durations)
  select o.hour, o.workflow, o.version, sum(o.completed)::int, sum(o.failed)::int, sum(o.cancelled)::int,
         coalesce(sum(o.ms), 0),
         coalesce(jsonb_object_agg(o.bucket, o.completed) filter (where o.bucket is not null), '{}')
  from (
    select date_trunc('hour', e.at) as hour, e.workflow, e.version, e.bucket,
           count(*) filter (where e.outcome = 'completed') as completed,
           count(*) filter (where e.outcome = 'failed') as failed,
           count(*) filter (where e.outcome = 'cancelled') as cancelled,
           sum(e.ms) as ms
    from wf.recent_run_ends(v_from) e
    where e.at < v_to
    group by 1, 2, 3, 4
  ) o
  group by o.hour, o.workflow, o.version
  on conflict (hour, workflow, version) do update
  set completed = wf.workflow_hours.completed + excluded.completed,
      failed = wf.workflow_hours.failed + excluded.failed,
      cancelled = wf.workflow_hours.cancelled + excluded.cancelled,
      completed_ms = wf.workflow_hours.completed_ms + excluded.completed_ms,
      durations = wf.merge_histograms(wf.workflow_hours.durations, excluded.durations);

  update wf.rollup_marks m set through = v_to where m.name = 'workflow_hours';
  delete from wf.workflow_hours h where h.hour < v_to - interval '2 days';
  return round(extract(epoch from v_to - v_from) / 60)::int;
end;
$$;

revoke all on function wf.roll_up_workflow_hours() from public;
