-- wf.compensate_progress: a compensating run moves on — one compensation at a time, in reverse
-- order of its steps' completion (the step that succeeded last is undone first). When every
-- compensation succeeded the run is failed, as it was before compensating. Callers hold the
-- run lock.
create or replace function wf.compensate_progress(p_run_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_next record;
  v_msg_id bigint;
begin
  -- guard: the run is not compensating (any more), or a compensation is under way
  if not exists (select 1 from wf.runs r where r.id = p_run_id and r.status = 'compensating')
     or exists (select 1 from wf.steps c where c.run_id = p_run_id and c.compensates is not null
                and c.status in ('queued', 'running', 'retrying')) then
    return;
  end if;
  select c.name, wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority) as queue, st.queue as stage_queue into v_next
  from wf.steps c
  join wf.runs r on r.id = c.run_id
  join wf.steps u on u.run_id = c.run_id and u.name = c.compensates
  join wf.stages st on st.name = c.function
  where c.run_id = p_run_id and c.compensates is not null and c.status = 'waiting'
  order by u.finished_at desc, u.name desc
  limit 1;
  if found then
    v_msg_id := pgmq.send(v_next.queue, jsonb_build_object('run_id', p_run_id, 'step', v_next.name), 0);
    perform pg_notify('wf', v_next.stage_queue);
    update wf.steps s set status = 'queued', msg_id = v_msg_id, queued_at = clock_timestamp()
    where s.run_id = p_run_id and s.name = v_next.name;
    return;
  end if;
  update wf.runs r set status = 'failed', finished_at = clock_timestamp() where r.id = p_run_id;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (p_run_id, null, null, 'run_compensated', null);
  perform wf.run_ended(p_run_id);
end;
$$;

revoke all on function wf.compensate_progress(uuid) from public;
