-- wf.deactivate: refuse new runs of a workflow; running ones go on
create or replace function wf.deactivate(workflow text)
returns boolean
language sql
security definer
set search_path = ''
as $$ select wf.set_active(workflow, false) $$;

revoke all on function wf.deactivate(text) from public;
grant execute on function wf.deactivate(text) to wf_admin;
