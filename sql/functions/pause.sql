-- wf.pause: pause a run — nothing new starts. Its steps waiting in a queue go back to
-- `waiting` (their messages leave the queue, their attempts stay counted); calls in flight
-- finish and are recorded but queue nothing after them; waits for signals and child runs go
-- on. wf.resume starts what became ready meanwhile. False when the run is final or paused.
create or replace function wf.pause(run_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_status text;
  v_step record;
  v_returned text[] := '{}'::text[];
begin
  if run_id is null then
    perform wf.raise_input_error('run_id must not be null');
  end if;
  perform pg_advisory_xact_lock(7001, hashtext(run_id::text));
  select r.status into v_status from wf.runs r where r.id = pause.run_id;
  if not found then
    raise exception 'unknown run %', run_id using errcode = 'P0002';
  end if;
  if v_status not in ('scheduled', 'pending', 'running') then
    return false;
  end if;
  for v_step in
    select s.name, s.msg_id, wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority) as queue
    from wf.steps s join wf.stages st on st.name = s.function join wf.runs r on r.id = s.run_id
    where s.run_id = pause.run_id and s.status in ('queued', 'retrying')
    order by s.name
  loop
    perform pgmq.archive(v_step.queue, v_step.msg_id);
    update wf.steps s set status = 'waiting', msg_id = null, queued_at = null
    where s.run_id = pause.run_id and s.name = v_step.name;
    v_returned := v_returned || v_step.name;
  end loop;
  update wf.runs r set status = 'paused' where r.id = pause.run_id;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (run_id, null, null, 'run_paused', jsonb_build_object('was', v_status, 'unqueued', to_jsonb(v_returned)));
  return true;
end;
$$;

revoke all on function wf.pause(uuid) from public;
grant execute on function wf.pause(uuid) to wf_admin;
