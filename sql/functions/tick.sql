-- wf.tick: the minute job — promotes due scheduled runs, dead-letters poison
-- steps (lease gone, attempts used up: nobody will answer), times out steps that
-- waited for a signal too long (also with no worker running), marks stuck steps
-- once, rolls the attempts' outcomes up per stage and minute (wf.stage_minutes) and the runs
-- that ended per workflow version and hour (wf.workflow_hours), applies
-- retention in small batches (wf.apply_retention), samples every stage's queue depth and
-- calls in flight for wf.stage_series (at most every 30 seconds, however many workers tick;
-- kept for a day) and raises alerts (wf.raise_alerts). The steps it looks at are found
-- through the queues' messages (wf.queue_messages: the work not done yet), never by reading
-- every step, so a tick costs the same at a million runs. Returns what it did.
create or replace function wf.tick()
returns jsonb
language plpgsql
security definer
set search_path = ''
-- maintenance over big tables with small answers: compiling its statements costs more than it saves
set jit = off
as $$
declare
  v_promoted int := 0;
  v_dead int := 0;
  v_stuck int := 0;
  v_retention jsonb;
  v_rolled int;
  v_rolled_runs int;
  v_timed_out int := 0;
  v_sampled int := 0;
  v_sampled_at timestamptz;
  v_alerts jsonb;
  v_queues text[];
  v_step record;
  v_stuck_after interval := make_interval(secs => (wf.setting('stuck_after_seconds'))::int);
begin
  -- queues missing after a restore (pgmq's tables are left out of dumps) come back first
  v_queues := wf.ensure_queues();

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
    -- a step whose call was claimed (its message read) and whose lease is over: its message
    -- is due again (a running step's message is due when its lease ends)
    from wf.queue_messages(clock_timestamp(), true) m
    join wf.steps s on s.run_id = m.run_id and s.name = m.step and s.msg_id = m.msg_id
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

  with candidates as (
    -- a stuck step's message has been due for as long
    select m.run_id, m.step, m.msg_id
    from wf.queue_messages(clock_timestamp() - v_stuck_after) m
  ), marked as (
    update wf.steps s set stuck_at = clock_timestamp()
    from candidates c
    where s.run_id = c.run_id and s.name = c.step and s.msg_id = c.msg_id
      and s.stuck_at is null
      and ((s.status in ('queued', 'retrying') and s.queued_at < clock_timestamp() - v_stuck_after)
           or (s.status = 'running' and s.lease_until < clock_timestamp() - v_stuck_after))
    returning s.run_id, s.name, s.attempt, s.status
  ), logged as (
    insert into wf.events (run_id, step, attempt, kind, detail)
    select m.run_id, m.name, m.attempt, 'stuck', jsonb_build_object('status', m.status) from marked m
    returning 1
  )
  select count(*) into v_stuck from logged;

  v_rolled := wf.roll_up_stage_minutes();
  v_rolled_runs := wf.roll_up_workflow_hours();
  v_retention := wf.apply_retention(make_interval(secs => (wf.setting('retention_budget_ms'))::numeric / 1000));

  -- guard: one sample per 30 seconds, however many workers tick (depth: every priority band)
  v_sampled_at := clock_timestamp();
  if not exists (select 1 from wf.stage_samples ss where ss.at > v_sampled_at - interval '30 seconds') then
    with sampled as (
      -- counted as wf.stage_health counts them
      insert into wf.stage_samples (stage, at, depth, in_flight)
      select st.name, v_sampled_at, coalesce(q.depth, 0), coalesce(q.in_flight, 0)
      from wf.stages st
      left join wf.queue_counts() q on q.stage = st.name
      on conflict on constraint stage_samples_pkey do nothing
      returning 1
    )
    select count(*) into v_sampled from sampled;
  end if;
  delete from wf.stage_samples ss where ss.at < v_sampled_at - interval '1 day';

  v_alerts := wf.raise_alerts();
  return jsonb_build_object('promoted', v_promoted, 'dead_lettered', v_dead, 'stuck', v_stuck,
                            'timed_out', v_timed_out, 'sampled', v_sampled, 'rolled_up_minutes', v_rolled,
                            'rolled_up_run_minutes', v_rolled_runs,
                            'alerts', v_alerts, 'recreated_queues', to_jsonb(v_queues)) || v_retention;
end;
$$;

revoke all on function wf.tick() from public;
grant execute on function wf.tick() to wf_worker, wf_admin;
