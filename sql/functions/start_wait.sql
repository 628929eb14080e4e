-- wf.start_wait: a wait_for step's message was claimed: the step starts waiting for its
-- signal (status running, no lease, no worker slot). A signal sent before is consumed at
-- once; otherwise the message is archived and, with a timeout, a new one due when the wait
-- ends is its timer (and wake_at lets wf.tick fire it without a worker). Called by wf.claim with the
-- run lock held.
create or replace function wf.start_wait(p_run_id uuid, p_step text, p_queue text, p_msg_id bigint)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_step record;
  v_signal record;
  v_timer bigint;
begin
  select s.attempt + 1 as attempt, d.action as signal, d.wait_seconds, r.status as run_status into v_step
  from wf.steps s
  join wf.runs r on r.id = s.run_id
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
  where s.run_id = p_run_id and s.name = p_step;

  update wf.steps s
  set status = 'running', attempt = v_step.attempt, started_at = clock_timestamp(), lease_until = null,
      stuck_at = null, wake_at = clock_timestamp() + make_interval(secs => v_step.wait_seconds)
  where s.run_id = p_run_id and s.name = p_step;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (p_run_id, p_step, v_step.attempt, 'started',
          jsonb_strip_nulls(jsonb_build_object('waiting_for', v_step.signal, 'timeout_seconds', v_step.wait_seconds)));
  if v_step.run_status in ('scheduled', 'pending') then
    update wf.runs r set status = 'running', started_at = clock_timestamp() where r.id = p_run_id;
  end if;

  -- a signal that came first is kept for the first step that waits for its name
  select g.id, g.payload into v_signal
  from wf.signals g
  where g.run_id = p_run_id and g.name = v_step.signal and g.consumed_at is null
  order by g.id limit 1;
  if found then
    update wf.signals g set consumed_by = p_step, consumed_at = clock_timestamp() where g.id = v_signal.id;
    update wf.steps s set wake_at = null where s.run_id = p_run_id and s.name = p_step;
    perform wf.complete(p_run_id, p_step, v_step.attempt, v_signal.payload);
  else
    perform pgmq.archive(p_queue, p_msg_id);
    -- the timeout's timer: a new message, due when the wait ends (not a read one kept
    -- invisible, which wf.queue_counts would count as a call in flight)
    if v_step.wait_seconds is not null then
      v_timer := pgmq.send(p_queue, jsonb_build_object('run_id', p_run_id, 'step', p_step), v_step.wait_seconds);
      update wf.steps s set msg_id = v_timer where s.run_id = p_run_id and s.name = p_step;
    end if;
  end if;
end;
$$;

revoke all on function wf.start_wait(uuid, text, text, bigint) from public;
