-- wf.resume_stage: workers claim from the stage again, and are woken at once. Returns false
-- when it was not paused. Raises P0002 for an unknown stage.
create or replace function wf.resume_stage(function text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_queue text;
begin
  update wf.stages st set paused = false where st.name = resume_stage.function and st.paused
  returning st.queue into v_queue;
  if found then
    perform pg_notify('wf', v_queue);
    return true;
  end if;
  if not exists (select 1 from wf.stages st where st.name = resume_stage.function) then
    raise exception 'unknown stage % (stages are created by wf.define)', coalesce(function, 'null') using errcode = 'P0002';
  end if;
  return false;
end;
$$;

revoke all on function wf.resume_stage(text) from public;
grant execute on function wf.resume_stage(text) to wf_admin;
