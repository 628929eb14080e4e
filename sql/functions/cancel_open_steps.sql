-- wf.cancel_open_steps: cancel every step of a run that has not finished
-- (running ones too when p_running); their messages leave the queues
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
    select s.name, s.attempt, s.status, s.msg_id, st.queue
    from wf.steps s join wf.stages st on st.name = s.function
    where s.run_id = p_run_id
      and (s.status in ('waiting', 'queued', 'retrying') or (p_running and s.status = 'running'))
  loop
    if v_step.msg_id is not null and v_step.status <> 'waiting' then
      perform pgmq.archive(v_step.queue, v_step.msg_id);
    end if;
    update wf.steps s set status = 'cancelled', finished_at = clock_timestamp(), lease_until = null
    where s.run_id = p_run_id and s.name = v_step.name;
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (p_run_id, v_step.name, v_step.attempt, 'cancelled', jsonb_build_object('was', v_step.status, 'reason', p_reason));
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

revoke all on function wf.cancel_open_steps(uuid, boolean, text) from public;
