-- wf.finish_child: a child run became final (its message from wf.run_ended, claimed
-- on the internal stage): the parent's workflow step succeeds with the child's output, or
-- fails with the child's error (retried as a new child while attempts remain). A no-op for
-- a child that is not the step's current one, or a step that no longer waits.
create or replace function wf.finish_child(p_run_id uuid, p_step text, p_child uuid)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_step record;
  v_child record;
begin
  perform pg_advisory_xact_lock(7001, hashtext(p_run_id::text));
  select s.status, s.attempt, s.child_run_id into v_step
  from wf.steps s where s.run_id = p_run_id and s.name = p_step;
  if v_step.status is distinct from 'running' or v_step.child_run_id is distinct from p_child then
    return false;
  end if;
  select r.status, r.output, r.error, r.workflow into v_child from wf.runs r where r.id = p_child;
  if v_child.status = 'completed' then
    return wf.complete(p_run_id, p_step, v_step.attempt, v_child.output);
  elsif v_child.status in ('failed', 'cancelled', 'compensation_failed') then
    return wf.fail(p_run_id, p_step, v_step.attempt,
      format('child run %s (%s) %s: %s', p_child, v_child.workflow, v_child.status, coalesce(v_child.error, 'no error given')));
  end if;
  return false;
end;
$$;

revoke all on function wf.finish_child(uuid, text, uuid) from public;
