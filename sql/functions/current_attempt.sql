-- wf.current_attempt: lock the run and return the step if p_attempt is its
-- running attempt; otherwise record the late answer and return nothing
create or replace function wf.current_attempt(p_run_id uuid, p_step text, p_attempt int, p_answer text)
returns table (status text, msg_id bigint, queue text, run_status text, attempt_base int,
               max_attempts int, on_failure text, backoff jsonb, started_at timestamptz)
language plpgsql
set search_path = ''
as $$
declare
  v_row record;
begin
  if p_run_id is null or p_step is null or p_attempt is null then
    perform wf.raise_input_error(format('%s needs run_id, step and attempt (got %s, %s, %s)', p_answer,
      coalesce(p_run_id::text, 'null'), coalesce(p_step, 'null'), coalesce(p_attempt::text, 'null')));
  end if;
  perform pg_advisory_xact_lock(7001, hashtext(p_run_id::text));
  select s.status, s.attempt, s.msg_id, wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority) as queue, r.status as run_status, s.attempt_base,
         d.max_attempts, d.on_failure, d.backoff, s.started_at
  into v_row
  from wf.steps s
  join wf.runs r on r.id = s.run_id
  join wf.stages st on st.name = s.function
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = coalesce(s.map_step, s.name)
  where s.run_id = p_run_id and s.name = p_step;
  if not found then
    raise exception 'unknown step % of run %', p_step, p_run_id using errcode = 'P0002';
  end if;

  -- guard: late answer from a lost attempt, or for a step that was cancelled meanwhile
  if v_row.status <> 'running' or v_row.attempt <> p_attempt then
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (p_run_id, p_step, p_attempt, 'stale_answer', jsonb_build_object('answer', p_answer, 'step_status', v_row.status, 'current_attempt', v_row.attempt));
    return;
  end if;
  status := v_row.status;
  msg_id := v_row.msg_id;
  queue := v_row.queue;
  run_status := v_row.run_status;
  attempt_base := v_row.attempt_base;
  max_attempts := v_row.max_attempts;
  on_failure := v_row.on_failure;
  backoff := v_row.backoff;
  started_at := v_row.started_at;
  return next;
end;
$$;

revoke all on function wf.current_attempt(uuid, text, int, text) from public;
