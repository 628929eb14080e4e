-- wf.pause_stage: no worker claims from this stage (an external system is down: stop calling
-- it, lose nothing). Its messages wait untouched; calls in flight finish. Returns false when
-- it was paused already. Raises P0002 for an unknown stage.
create or replace function wf.pause_stage(function text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  update wf.stages st set paused = true where st.name = pause_stage.function and not st.paused;
  if found then
    return true;
  end if;
  if not exists (select 1 from wf.stages st where st.name = pause_stage.function) then
    raise exception 'unknown stage % (stages are created by wf.define)', coalesce(function, 'null') using errcode = 'P0002';
  end if;
  return false;
end;
$$;

revoke all on function wf.pause_stage(text) from public;
grant execute on function wf.pause_stage(text) to wf_admin;
