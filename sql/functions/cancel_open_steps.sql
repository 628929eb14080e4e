-- wf.cancel_open_steps: cancel every step of a run that has not finished
-- (running ones too when p_running); their messages leave the queues. Steps that wait
-- without a call in flight (no lease: for a signal, a child run, a map step's items) are
-- cancelled either way, and their child runs with them.
create or replace function wf.cancel_open_steps(p_run_id uuid, p_running boolean, p_reason text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_step record;
  v_count int := 0;
begin
  for v_step in
    select s.name, s.attempt, s.status, s.msg_id, s.child_run_id, wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority) as queue
    from wf.steps s join wf.stages st on st.name = s.function join wf.runs r on r.id = s.run_id
    where s.run_id = p_run_id
      and (s.status in ('waiting', 'queued', 'retrying')
           or (s.status = 'running' and (p_running or s.lease_until is null)))
    order by s.name
  loop
    if v_step.msg_id is not null and v_step.status <> 'waiting' then
      perform pgmq.archive(v_step.queue, v_step.msg_id);
    end if;
    update wf.steps s set status = 'cancelled', finished_at = clock_timestamp(), lease_until = null, wake_at = null
    where s.run_id = p_run_id and s.name = v_step.name;
    -- guard: a child run nobody waits for any more stops too (its lock after this run's)
    if v_step.status = 'running' and v_step.child_run_id is not null then
      perform wf.cancel(v_step.child_run_id,
        format('parent run %s %s', p_run_id, case when p_running then 'was cancelled' else 'failed' end));
    end if;
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (p_run_id, v_step.name, v_step.attempt, 'cancelled', jsonb_build_object('was', v_step.status, 'reason', p_reason));
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

revoke all on function wf.cancel_open_steps(uuid, boolean, text) from public;
