-- wf.unqueue_steps: a run's steps waiting in a queue (queued, or retrying after a backoff) go back
-- to `waiting`, their messages archived and their attempts left as they were; wf.advance queues
-- them again. For wf.pause (nothing new starts) and wf.debounce_run (they start later). Returns
-- their names. Callers hold the run lock.
create or replace function wf.unqueue_steps(p_run_id uuid)
returns text[]
language plpgsql
set search_path = ''
as $$
declare
  v_step record;
  v_names text[] := '{}'::text[];
begin
  for v_step in
    select s.name, s.msg_id, wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority) as queue
    from wf.steps s join wf.stages st on st.name = s.function join wf.runs r on r.id = s.run_id
    where s.run_id = p_run_id and s.status in ('queued', 'retrying')
    order by s.name
  loop
    perform pgmq.archive(v_step.queue, v_step.msg_id);
    update wf.steps s set status = 'waiting', msg_id = null, queued_at = null
    where s.run_id = p_run_id and s.name = v_step.name;
    v_names := v_names || v_step.name;
  end loop;
  return v_names;
end;
$$;

revoke all on function wf.unqueue_steps(uuid) from public;
