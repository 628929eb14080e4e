-- wf.unschedule: stop a recurring run; false when there was none
create or replace function wf.unschedule(name text)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  delete from wf.schedules s where s.name = unschedule.name;
  if not found then
    return false;
  end if;
  perform wf.require_pg_cron();
  execute 'select cron.unschedule(jobid) from cron.job where jobname = $1' using 'wf:' || name;
  return true;
end;
$$;

revoke all on function wf.unschedule(text) from public;
grant execute on function wf.unschedule(text) to wf_admin;
