-- wf.wait_timed_out: a wait_for step's time is up (its timer message came back, or
-- wf.tick found wake_at past): the step fails without retry, naming the signal, and its
-- on_failure applies (continue lets a fallback step run). A no-op unless the attempt is
-- still waiting and its time has come.
create or replace function wf.wait_timed_out(p_run_id uuid, p_step text, p_attempt int)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_step record;
begin
  perform pg_advisory_xact_lock(7001, hashtext(p_run_id::text));
  select s.status, s.attempt, s.wake_at, d.action as signal, d.wait_seconds into v_step
  from wf.steps s
  join wf.runs r on r.id = s.run_id
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
  where s.run_id = p_run_id and s.name = p_step;
  -- guard: the signal came meanwhile, or this is an older attempt's timer
  if v_step.status is distinct from 'running' or v_step.attempt <> p_attempt
     or v_step.wake_at is null or v_step.wake_at > clock_timestamp() then
    return false;
  end if;
  update wf.steps s set wake_at = null where s.run_id = p_run_id and s.name = p_step;
  return wf.fail(p_run_id, p_step, p_attempt,
    format('no signal "%s" within %s seconds', v_step.signal, v_step.wait_seconds), false);
end;
$$;

revoke all on function wf.wait_timed_out(uuid, text, int) from public;
