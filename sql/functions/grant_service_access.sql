-- wf.grant_service_access: let Supabase's `service_role` read wf as wf_reader does (usage on
-- schema wf, select on every view, execute on every function wf_reader may call), for backends
-- that read wf through PostgREST with the service key (without it they get "permission denied
-- for schema wf"). Direct grants, not membership: Supabase's API roles are noinherit. Idempotent;
-- sql/access.sql calls it again at every install once service_role has usage on wf, so views
-- and functions re-created later keep the grant. PostgREST also needs wf in its exposed schemas.
create or replace function wf.grant_service_access()
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_object text;
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'service_role') then
    raise exception 'role service_role does not exist: wf.grant_service_access() is for Supabase (or a stand-in for it)'
      using errcode = '55000';
  end if;
  execute 'grant usage on schema wf to service_role';
  for v_object in
    select c.oid::regclass::text from pg_catalog.pg_class c
    where c.relnamespace = 'wf'::regnamespace and c.relkind in ('v', 'm')
      and pg_catalog.has_table_privilege('wf_reader', c.oid, 'select')
    order by 1
  loop
    execute format('grant select on %s to service_role', v_object);
  end loop;
  for v_object in
    select p.oid::regprocedure::text from pg_catalog.pg_proc p
    where p.pronamespace = 'wf'::regnamespace
      and pg_catalog.has_function_privilege('wf_reader', p.oid, 'execute')
    order by 1
  loop
    execute format('grant execute on function %s to service_role', v_object);
  end loop;
end;
$$;

revoke all on function wf.grant_service_access() from public;
