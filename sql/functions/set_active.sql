-- wf.set_active: shared body of activate/deactivate
create or replace function wf.set_active(workflow text, active boolean)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if workflow is null then
    perform wf.raise_input_error('workflow must not be null');
  end if;
  update wf.workflows w set active = set_active.active, updated_at = now() where w.name = set_active.workflow;
  if not found then
    raise exception 'unknown workflow %', workflow using errcode = 'P0002';
  end if;
  return true;
end;
$$;

revoke all on function wf.set_active(text, boolean) from public;
