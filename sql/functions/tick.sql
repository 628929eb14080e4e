-- wf.tick: the minute job — promotes due scheduled runs, dead-letters poison
-- steps (lease gone, attempts used up: nobody will answer), times out steps that
-- waited for a signal too long (also with no worker running), marks stuck steps
-- once, deletes finished runs past retention, and samples every stage's queue depth
-- and calls in flight for wf.stage_series (at most every 30 seconds, however many
-- workers tick; kept for a day). Returns what it did.
create or replace function wf.tick()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_promoted int := 0;
  v_dead int := 0;
  v_stuck int := 0;
  v_deleted int := 0;
  v_timed_out int := 0;
  v_sampled int := 0;
  v_sampled_at timestamptz;
  v_step record;
  v_stuck_after interval := make_interval(secs => (wf.setting('stuck_after_seconds'))::int);
begin
  with due as (
    update wf.runs r set status = 'pending'
    where r.status = 'scheduled' and r.run_at <= clock_timestamp()
    returning r.id
  ), logged as (
    insert into wf.events (run_id, kind) select due.id, 'run_due' from due returning 1
  )
  select count(*) into v_promoted from logged;

  for v_step in
    select s.run_id, s.name, s.attempt, d.max_attempts
    from wf.steps s
    join wf.runs r on r.id = s.run_id
    join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = coalesce(s.map_step, s.name)
    where s.status = 'running' and s.lease_until < clock_timestamp()
      and s.attempt - s.attempt_base >= d.max_attempts
  loop
    perform pg_advisory_xact_lock(7001, hashtext(v_step.run_id::text));
    -- guard: the attempt answered while we waited for the lock
    continue when not exists (select 1 from wf.steps s
                              where s.run_id = v_step.run_id and s.name = v_step.name and s.status = 'running'
                                and s.attempt = v_step.attempt and s.lease_until < clock_timestamp());
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (v_step.run_id, v_step.name, v_step.attempt, 'attempt_lost', '{"by": "tick"}');
    perform wf.kill_step(v_step.run_id, v_step.name, v_step.attempt,
      format('step %s of run %s: no answer after %s attempts', v_step.name, v_step.run_id, v_step.max_attempts), null);
    v_dead := v_dead + 1;
  end loop;

  -- wait_for steps past their timeout (the worker's timer message usually comes first)
  for v_step in
    select s.run_id, s.name, s.attempt from wf.steps s
    where s.wake_at <= clock_timestamp() order by s.wake_at limit 1000
  loop
    if wf.wait_timed_out(v_step.run_id, v_step.name, v_step.attempt) then
      v_timed_out := v_timed_out + 1;
    else
      -- guard: a step that stopped waiting some other way (cancelled) keeps no timer
      update wf.steps s set wake_at = null
      where s.run_id = v_step.run_id and s.name = v_step.name and s.status <> 'running';
    end if;
  end loop;

  with marked as (
    update wf.steps s set stuck_at = clock_timestamp()
    where s.stuck_at is null
      and ((s.status in ('queued', 'retrying') and s.queued_at < clock_timestamp() - v_stuck_after)
           or (s.status = 'running' and s.lease_until < clock_timestamp() - v_stuck_after))
    returning s.run_id, s.name, s.attempt, s.status
  ), logged as (
    insert into wf.events (run_id, step, attempt, kind, detail)
    select m.run_id, m.name, m.attempt, 'stuck', jsonb_build_object('status', m.status) from marked m
    returning 1
  )
  select count(*) into v_stuck from logged;

  with old as (
    select r.id from wf.runs r
    where r.status in ('completed', 'failed', 'cancelled', 'compensation_failed')
      and r.finished_at < clock_timestamp() - make_interval(days => (wf.setting('retention_days'))::int)
    limit 10000
  ), gone as (
    delete from wf.runs r using old where r.id = old.id returning r.id
  ), history as (
    delete from wf.events e using gone where e.run_id = gone.id
  )
  select count(*) into v_deleted from gone;

  -- guard: one sample per 30 seconds, however many workers tick (depth: every priority band)
  v_sampled_at := clock_timestamp();
  if not exists (select 1 from wf.stage_samples ss where ss.at > v_sampled_at - interval '30 seconds') then
    with running as (
      select s.function, count(*)::int as n from wf.steps s where s.status = 'running' group by s.function
    ), sampled as (
      insert into wf.stage_samples (stage, at, depth, in_flight)
      select st.name, v_sampled_at, m.queue_length, coalesce(running.n, 0)
      from wf.stages st
      cross join lateral wf.queue_metrics(st.queue) m
      left join running on running.function = st.name
      on conflict on constraint stage_samples_pkey do nothing
      returning 1
    )
    select count(*) into v_sampled from sampled;
  end if;
  delete from wf.stage_samples ss where ss.at < v_sampled_at - interval '1 day';

  return jsonb_build_object('promoted', v_promoted, 'dead_lettered', v_dead, 'stuck', v_stuck, 'deleted_runs', v_deleted,
                            'timed_out', v_timed_out, 'sampled', v_sampled);
end;
$$;

revoke all on function wf.tick() from public;
grant execute on function wf.tick() to wf_worker, wf_admin;
