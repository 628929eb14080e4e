-- wf.activate: let new runs of a workflow start again
create or replace function wf.activate(workflow text)
returns boolean
language sql
security definer
set search_path = ''
as $$ select wf.set_active(workflow, true) $$;

revoke all on function wf.activate(text) from public;
grant execute on function wf.activate(text) to wf_admin;
