-- wf.run_ended: a run became final (completed, failed, cancelled, compensation_failed): its
-- parent step is told (wf.notify_parent), and a run waiting for its concurrency key may start
-- (wf.release_key). Callers hold the run's lock.
create or replace function wf.run_ended(p_run_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_run record;
begin
  select r.workflow, r.parent_run_id, r.concurrency_key, r.concurrency_limit into v_run
  from wf.runs r where r.id = p_run_id;
  if v_run.parent_run_id is not null then
    perform wf.notify_parent(p_run_id);
  end if;
  if v_run.concurrency_limit is not null then
    perform wf.release_key(v_run.workflow, v_run.concurrency_key);
  end if;
end;
$$;

revoke all on function wf.run_ended(uuid) from public;
