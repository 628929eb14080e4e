-- wf.close_if_done: the run completes when no step is left to do, with its output
-- (wf.run_output); a child run's parent is told. Callers hold the run lock.
create or replace function wf.close_if_done(p_run_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from wf.steps s
                 where s.run_id = p_run_id
                   and s.status not in ('succeeded', 'failed', 'skipped', 'dead', 'cancelled')) then
    update wf.runs r set status = 'completed', finished_at = clock_timestamp(), output = wf.run_output(r.id)
    where r.id = p_run_id and r.status in ('scheduled', 'pending', 'running');
    if found then
      insert into wf.events (run_id, step, attempt, kind, detail)
      values (p_run_id, null, null, 'run_completed', null);
      perform wf.run_ended(p_run_id);
    end if;
  end if;
end;
$$;

revoke all on function wf.close_if_done(uuid) from public;
