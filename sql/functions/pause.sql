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
  v_returned text[];
begin
  v_status := wf.lock_run(run_id);
  if v_status not in ('scheduled', 'pending', 'running') then
    return false;
  end if;
  v_returned := wf.unqueue_steps(run_id);
  update wf.runs r set status = 'paused' where r.id = pause.run_id;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (run_id, null, null, 'run_paused', jsonb_build_object('was', v_status, 'unqueued', to_jsonb(v_returned)));
  return true;
end;
$$;

revoke all on function wf.pause(uuid) from public;
grant execute on function wf.pause(uuid) to wf_admin;
