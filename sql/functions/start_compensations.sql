-- wf.start_compensations: a run just failed — every succeeded step that has a compensation
-- gets a step row for it (`<step>:compensate`), the run is `compensating`, and the first one
-- (of the step that succeeded last) is queued by wf.compensate_progress. False when there is
-- nothing to compensate (the run stays failed). Callers hold the run lock.
create or replace function wf.start_compensations(p_run_id uuid)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_steps jsonb;
begin
  with undo as (
    insert into wf.steps (run_id, name, function, status, compensates)
    select p_run_id, c.name, c.function, 'waiting', c.compensates
    from wf.runs r
    join wf.definition_steps c on c.workflow = r.workflow and c.version = r.version and c.compensates is not null
    join wf.steps s on s.run_id = r.id and s.name = c.compensates and s.status = 'succeeded'
    where r.id = p_run_id
    on conflict on constraint steps_pkey do nothing
    returning name
  )
  select jsonb_agg(undo.name order by undo.name) into v_steps from undo;
  if v_steps is null then
    return false;
  end if;
  update wf.runs r set status = 'compensating', finished_at = null where r.id = p_run_id;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (p_run_id, null, null, 'run_compensating', jsonb_build_object('compensations', v_steps));
  perform wf.compensate_progress(p_run_id);
  return true;
end;
$$;

revoke all on function wf.start_compensations(uuid) from public;
