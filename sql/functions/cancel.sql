-- wf.cancel: stop a run and its unfinished child runs; answers still in flight become no-ops
create or replace function wf.cancel(run_id uuid, reason text default null)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_status text;
begin
  v_status := wf.lock_run(run_id);
  if v_status in ('completed', 'failed', 'cancelled', 'compensation_failed') then
    return false;
  end if;
  perform wf.cancel_open_steps(run_id, true, coalesce(reason, 'run cancelled'));
  update wf.runs r set status = 'cancelled', finished_at = clock_timestamp(), error = left(reason, 4000)
  where r.id = cancel.run_id;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (run_id, null, null, 'run_cancelled', jsonb_build_object('reason', reason));
  -- its unfinished children were cancelled with the steps waiting for them (cancel_open_steps)
  perform wf.run_ended(run_id);
  return true;
end;
$$;

revoke all on function wf.cancel(uuid, text) from public;
grant execute on function wf.cancel(uuid, text) to wf_admin;
