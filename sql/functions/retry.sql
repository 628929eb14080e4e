-- wf.retry: resume a failed run at its dead and failed steps with fresh attempts;
-- succeeded steps are not repeated and stale answers stay fenced (attempt numbers go on).
-- A compensation_failed run resumes its compensations instead; a run whose compensations
-- ran is not retried (what it did was undone).
create or replace function wf.retry(run_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_status text;
  v_step record;
  v_msg_id bigint;
  v_queued jsonb := '{}'::jsonb;
begin
  v_status := wf.lock_run(run_id);
  -- a compensation that failed for good: the compensations resume where they stopped
  if v_status = 'compensation_failed' then
    for v_step in
      select s.name, s.dlq_msg_id
      from wf.steps s
      where s.run_id = retry.run_id and s.compensates is not null and s.status in ('dead', 'failed')
    loop
      if v_step.dlq_msg_id is not null then
        perform pgmq.archive('wf_dlq', v_step.dlq_msg_id);
      end if;
      update wf.steps s set status = 'waiting', msg_id = null, dlq_msg_id = null, attempt_base = s.attempt,
                            finished_at = null, error = null, http_status = null
      where s.run_id = retry.run_id and s.name = v_step.name;
    end loop;
    update wf.runs r set status = 'compensating', finished_at = null where r.id = retry.run_id;
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (run_id, null, null, 'run_retried', jsonb_build_object('compensating', true));
    perform wf.compensate_progress(run_id);
    return true;
  end if;
  if v_status <> 'failed' then
    return false;
  end if;
  -- guard: what the run did was undone by its compensations; doing part of it again would not redo the rest
  if exists (select 1 from wf.steps s where s.run_id = retry.run_id and s.compensates is not null) then
    perform wf.raise_input_error(format('run %s was rolled back by its compensations: start a new run instead', run_id));
  end if;

  for v_step in
    select s.name, s.attempt, s.dlq_msg_id, st.queue as stage_queue, wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority) as queue
    from wf.steps s join wf.stages st on st.name = s.function join wf.runs r on r.id = s.run_id
    where s.run_id = retry.run_id and s.status in ('dead', 'failed')
  loop
    if v_step.dlq_msg_id is not null then
      perform pgmq.archive('wf_dlq', v_step.dlq_msg_id);
    end if;
    select pgmq.send(v_step.queue, jsonb_build_object('run_id', run_id, 'step', v_step.name), 0) into v_msg_id;
    perform pg_notify('wf', v_step.stage_queue);
    update wf.steps s
    set status = 'queued', msg_id = v_msg_id, dlq_msg_id = null, attempt_base = s.attempt,
        queued_at = clock_timestamp(), finished_at = null, error = null, http_status = null
    where s.run_id = retry.run_id and s.name = v_step.name;
    v_queued := v_queued || jsonb_build_object(v_step.name, 0);
  end loop;
  -- steps cancelled by the failure wait again, with a fresh budget too
  update wf.steps s set status = 'waiting', finished_at = null, attempt_base = s.attempt
  where s.run_id = retry.run_id and s.status = 'cancelled';

  update wf.runs r set status = 'running', finished_at = null, error = null, failed_step = null
  where r.id = retry.run_id;
  v_queued := v_queued || wf.advance(run_id);
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (run_id, null, null, 'run_retried', jsonb_build_object('queued', v_queued));
  return true;
end;
$$;

revoke all on function wf.retry(uuid) from public;
grant execute on function wf.retry(uuid) to wf_admin;
