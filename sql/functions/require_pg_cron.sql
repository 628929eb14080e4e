-- wf.require_pg_cron: recurring runs need pg_cron in this database
create or replace function wf.require_pg_cron()
returns void
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
    raise exception 'pg_cron is not installed in database %: recurring runs need it (create extension pg_cron)',
      current_database() using errcode = '55000';
  end if;
end;
$$;

revoke all on function wf.require_pg_cron() from public;
