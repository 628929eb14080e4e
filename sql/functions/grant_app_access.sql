-- wf.grant_app_access: let Supabase's `authenticated` role read its own runs (idempotent)
create or replace function wf.grant_app_access()
returns void
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticated') then
    raise exception 'role authenticated does not exist: wf.grant_app_access() is for Supabase (or a stand-in for it)'
      using errcode = '55000';
  end if;
  execute 'drop policy if exists runs_owner on wf.runs';
  execute 'create policy runs_owner on wf.runs for select to authenticated
             using (owner = (select wf.auth_uid()))';
  execute 'drop policy if exists steps_owner on wf.steps';
  execute 'create policy steps_owner on wf.steps for select to authenticated
             using (exists (select 1 from wf.runs r where r.id = run_id and r.owner = (select wf.auth_uid())))';
  execute 'grant usage on schema wf to authenticated';
  execute 'grant select (id, workflow, version, status, input, correlation_id, error, failed_step, run_at,
                         created_at, started_at, finished_at, owner, output, parent_run_id) on wf.runs to authenticated';
  execute 'grant select (run_id, name, function, status, attempt, queued_at, started_at, finished_at,
                         output, error) on wf.steps to authenticated';
  execute 'grant select on wf.my_runs to authenticated';
  execute 'grant execute on function wf.auth_uid() to authenticated';
end;
$$;

revoke all on function wf.grant_app_access() from public;
