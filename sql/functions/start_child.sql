-- wf.start_child: a workflow step's attempt starts its child run (the worker rendered the
-- input_template). Idempotent per attempt: the child's idempotency key is made of the
-- parent run, step and attempt, so a repeated call returns the same child. The step then
-- waits without a lease or a message; the child's end comes back through wf.run_ended
-- → wf.finish_child. A child that cannot start (unknown or inactive workflow, bad input,
-- nesting past 10) fails the step without retry, naming why. Returns the child's id, or
-- null when the attempt is no longer current or the step failed.
create or replace function wf.start_child(run_id uuid, step text, attempt int, input jsonb)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cur record;
  v_parent record;
  v_child uuid;
begin
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'start_child');
  if not found then
    return null;
  end if;
  select r.depth, r.correlation_id, r.owner, r.priority, d.action as workflow into v_parent
  from wf.runs r
  join wf.steps s on s.run_id = r.id and s.name = start_child.step
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = coalesce(s.map_step, s.name)
  where r.id = start_child.run_id;

  -- guard: nesting stops at 10 levels (a run and its children, grandchildren …)
  if v_parent.depth >= 10 then
    perform wf.fail(run_id, step, attempt,
      format('workflow %s would be nested %s levels deep; at most 10 are allowed', v_parent.workflow, v_parent.depth + 1), false);
    return null;
  end if;
  begin
    v_child := wf.enqueue(v_parent.workflow, input, format('wf-child:%s:%s:%s', run_id, step, attempt),
                          null, v_parent.correlation_id, v_parent.priority);
  exception when sqlstate '22023' or sqlstate 'P0002' or sqlstate '55000' or sqlstate '54000' then
    -- guard: the child cannot start; trying again would not help
    perform wf.fail(run_id, step, attempt, format('child workflow %s did not start: %s', v_parent.workflow, sqlerrm), false);
    return null;
  end;
  update wf.runs r set parent_run_id = start_child.run_id, parent_step = start_child.step,
                       depth = v_parent.depth + 1, owner = v_parent.owner
  where r.id = v_child and r.parent_run_id is null;
  if found then
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (run_id, step, attempt, 'child_started', jsonb_build_object('child_run_id', v_child, 'workflow', v_parent.workflow));
  end if;
  -- the step waits for the child: no lease, and its message is done with
  perform pgmq.archive(v_cur.queue, v_cur.msg_id);
  update wf.steps s set child_run_id = v_child, lease_until = null
  where s.run_id = start_child.run_id and s.name = start_child.step;
  return v_child;
end;
$$;

revoke all on function wf.start_child(uuid, text, int, jsonb) from public;
grant execute on function wf.start_child(uuid, text, int, jsonb) to wf_worker, wf_admin;
