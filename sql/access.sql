-- wf access: schema grants, row level security, and what ties a table to a function (a
-- column default, a trigger). Re-applied by the installer at every install, after the
-- migrations and the routines, so it must be idempotent. Each function and view file grants on
-- its own object; this file holds what belongs to no one routine.
-- The roles themselves are made by sql/roles.sql, before anything else.
--
-- Nothing is granted to public. The API functions are security definer (with an empty
-- search_path) so wf's roles need no privileges on the private tables.
--
-- Run owners and row level security, for apps on Supabase:
-- * wf.runs.owner is filled by the column default wf.auth_uid() (Supabase's auth.uid(), or
--   null without JWT claims). The default is set here rather than in the table migration
--   because it calls a function, and functions are created after the migrations.
-- * RLS on wf.runs and wf.steps (not forced). wf's functions and views are owned by the
--   tables' owner, who bypasses RLS, so the hot path and the dashboards see every row.
--   runs_wf_roles / steps_wf_roles: wf's roles read every row (they have no table privileges;
--   this only says what they would see if an operator granted some). runs_owner /
--   steps_owner (made by wf.grant_app_access()): Supabase's `authenticated` reads its own runs
--   and their steps. Nothing can be written through RLS: writes go through wf's functions.

revoke all on schema wf from public;
grant usage on schema wf to wf_reader, wf_worker, wf_admin;
grant wf_reader to wf_admin;

-- guard: `alter default privileges in schema wf revoke execute ... from public` would do
-- nothing (a per-schema entry cannot take away the global default, execute for public), so
-- every function file revokes it itself, and this sweeps up after them; tests/sql/test_lint.py
-- checks that nothing in wf is executable by public.
revoke all on all tables in schema wf from public;
revoke all on all sequences in schema wf from public;
revoke all on all functions in schema wf from public;

alter table wf.runs alter column owner set default wf.auth_uid();

-- live updates (the web dashboard LISTENs on wf_changes): after each statement that inserts
-- events, wf.notify_changes sends the runs they belong to. Here, not in a migration, because
-- it calls a function, and functions are made after the migrations; re-made at every install,
-- so a trigger dropped by hand comes back.
create or replace trigger events_notify after insert on wf.events
  referencing new table as new_events
  for each statement execute function wf.notify_changes();

-- settings out of range are refused before they are stored (SQLSTATE 22023, naming the setting):
-- wf.check_setting holds the ranges. Here for the same reason as events_notify.
create or replace trigger settings_check before insert or update on wf.settings
  for each row execute function wf.check_setting();

alter table wf.runs enable row level security;
alter table wf.steps enable row level security;
drop policy if exists runs_wf_roles on wf.runs;
create policy runs_wf_roles on wf.runs for select to wf_reader, wf_worker, wf_admin using (true);
drop policy if exists steps_wf_roles on wf.steps;
create policy steps_wf_roles on wf.steps for select to wf_reader, wf_worker, wf_admin using (true);

-- apps on Supabase: `authenticated` reads its own runs through wf.my_runs. Where the role is
-- created after wf was installed, run `select wf.grant_app_access()` once (or `wf install`).
do $$
begin
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticated') then
    perform wf.grant_app_access();
  end if;
end
$$;

-- backends that read wf through PostgREST with the service key: `select wf.grant_service_access()`
-- once; after that every install grants service_role what it made again (views re-created …).
do $$
begin
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'service_role')
     and pg_catalog.has_schema_privilege('service_role', 'wf', 'usage') then
    perform wf.grant_service_access();
  end if;
end
$$;
