-- wf.tick_scheduled: whether pg_cron runs wf.tick() here; without it the workers run it
create or replace function wf.tick_scheduled()
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_scheduled boolean;
begin
  if not exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
    return false;
  end if;
  execute 'select exists (select 1 from cron.job where jobname = $1 and command = $2 and active)'
    into v_scheduled using 'wf-tick', 'select wf.tick()';
  return v_scheduled;
end;
$$;

revoke all on function wf.tick_scheduled() from public;
grant execute on function wf.tick_scheduled() to wf_worker, wf_admin;
