-- wf.disallow_sql_step: take back wf.allow_sql_step. Definitions that name the function
-- are no longer accepted, and a step of a running run that reaches it fails without retry.
-- Returns whether it was allowed.
create or replace function wf.disallow_sql_step(fn regprocedure)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from wf.sql_steps q where q.fn = disallow_sql_step.fn;
  return found;
end;
$$;

revoke all on function wf.disallow_sql_step(regprocedure) from public;
grant execute on function wf.disallow_sql_step(regprocedure) to wf_admin;
