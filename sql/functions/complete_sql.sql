-- wf.complete_sql: run a sql step's attempt — call its registered function with the
-- rendered args and record the step's success in this same transaction, so the function's
-- effect commits exactly once with the step (a worker that dies before the commit leaves
-- neither). An exception in the function is a step failure, rolled back to before the
-- call: SQLSTATE classes 22 (data) and 23 (constraint) are not retried, others are.
-- A function no longer allowed (wf.disallow_sql_step) fails the step without retry.
-- Returns whether the answer counted (false: not the step's current attempt).
create or replace function wf.complete_sql(run_id uuid, step text, attempt int, args jsonb)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_name text;
  v_fn regprocedure;
  v_output jsonb;
  v_state text;
  v_message text;
begin
  perform 1 from wf.current_attempt(run_id, step, attempt, 'complete_sql');
  if not found then
    return false;
  end if;
  select d.action into v_name
  from wf.runs r
  join wf.steps s on s.run_id = r.id and s.name = complete_sql.step
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = coalesce(s.map_step, s.name)
  where r.id = complete_sql.run_id;
  select q.fn into v_fn from wf.sql_steps q where q.name = v_name;
  if v_fn is null then
    return wf.fail(run_id, step, attempt, format('sql function %s is no longer allowed as a step (wf.allow_sql_step)', v_name), false);
  end if;
  begin
    -- the name comes from the regprocedure (pg_catalog quotes and qualifies it), the value by USING
    execute format('select %s($1)', v_fn::regproc::text) into v_output using args;
  exception when others then
    get stacked diagnostics v_state = returned_sqlstate, v_message = message_text;
    return wf.fail(run_id, step, attempt, format('sql step %s failed: %s (SQLSTATE %s)', v_name, v_message, v_state),
                   left(v_state, 2) not in ('22', '23'));
  end;
  return wf.complete(run_id, step, attempt, v_output);
end;
$$;

revoke all on function wf.complete_sql(uuid, text, int, jsonb) from public;
grant execute on function wf.complete_sql(uuid, text, int, jsonb) to wf_worker, wf_admin;
