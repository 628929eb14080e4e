-- wf.kill_step: a step failed for good under on_failure abort — it goes to the
-- dead-letter queue, the run fails, and the steps not yet started are cancelled; with
-- compensations to run the run is compensating first. A compensation that dies makes its
-- run compensation_failed.
create or replace function wf.kill_step(p_run_id uuid, p_step text, p_attempt int, p_error text, p_http_status int)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_step record;
  v_dlq_msg_id bigint;
  v_map_step text;
  v_compensates text;
begin
  select s.msg_id, s.status, wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority) as queue, r.workflow, r.version, r.correlation_id, s.function into v_step
  from wf.steps s join wf.stages st on st.name = s.function join wf.runs r on r.id = s.run_id
  where s.run_id = p_run_id and s.name = p_step;

  if v_step.msg_id is not null then
    perform pgmq.archive(v_step.queue, v_step.msg_id);
  end if;
  select pgmq.send('wf_dlq', jsonb_build_object(
    'run_id', p_run_id, 'workflow', v_step.workflow, 'version', v_step.version, 'step', p_step,
    'function', v_step.function, 'attempt', p_attempt, 'error', p_error, 'http_status', p_http_status,
    'correlation_id', v_step.correlation_id, 'failed_at', clock_timestamp()), 0)
  into v_dlq_msg_id;
  perform pg_notify('wf', 'wf_dlq');

  update wf.steps s
  set status = 'dead', dlq_msg_id = v_dlq_msg_id, finished_at = clock_timestamp(), lease_until = null,
      error = p_error, http_status = p_http_status
  where s.run_id = p_run_id and s.name = p_step
  returning s.map_step, s.compensates into v_map_step, v_compensates;
  insert into wf.events (run_id, step, attempt, kind, stage, detail)
  values (p_run_id, p_step, p_attempt, 'dead', v_step.function, jsonb_strip_nulls(jsonb_build_object('error', p_error, 'http_status', p_http_status, 'dlq_msg_id', v_dlq_msg_id)));

  -- guard: a compensation failed for good — the run stops compensating, as compensation_failed
  if v_compensates is not null then
    update wf.runs r set status = 'compensation_failed', finished_at = clock_timestamp()
    where r.id = p_run_id and r.status = 'compensating';
    if found then
      insert into wf.events (run_id, step, attempt, kind, detail)
      values (p_run_id, p_step, p_attempt, 'run_compensation_failed', jsonb_build_object('error', p_error));
      perform wf.run_ended(p_run_id);
    end if;
    return;
  end if;

  update wf.runs r
  set status = 'failed', finished_at = clock_timestamp(), error = p_error, failed_step = p_step
  where r.id = p_run_id and r.status not in ('completed', 'failed', 'cancelled', 'compensating', 'compensation_failed');
  if found then
    perform wf.cancel_open_steps(p_run_id, false, format('step %s is dead', p_step));
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (p_run_id, p_step, p_attempt, 'run_failed', jsonb_build_object('error', p_error));
    -- the succeeded steps' compensations run first (wf.start_compensations), then the run is failed
    if not wf.start_compensations(p_run_id) then
      perform wf.run_ended(p_run_id);
    end if;
  end if;
  -- a dead item: its map step ends once its other items in flight have answered
  if v_map_step is not null then
    perform wf.map_progress(p_run_id, v_map_step);
  end if;
end;
$$;

revoke all on function wf.kill_step(uuid, text, int, text, int) from public;
