-- wf 0008: run owners and row level security, for apps on Supabase.
--
-- What this does, and why this way:
--
-- * wf.runs.owner (uuid, null when nobody signed in started the run). It is filled by the
--   column default wf.auth_uid(): Supabase's auth.uid() — the `sub` of the JWT whose claims
--   PostgREST, or the `workflows` edge function, put in the `request.jwt.claims` setting.
--   wf.enqueue is security definer, and a default is evaluated inside it, where that setting
--   is still the caller's. A default rather than a trigger: no trigger call on the hot path,
--   and wf.enqueue itself stays as 0003 wrote it. The auth schema is looked up when a run is
--   created, not when wf is installed, so wf installed before (or without) Supabase Auth
--   works: without claims, or without auth.uid(), the owner is null. wf.enqueue_trigger and
--   pg_cron go through wf.enqueue too: a row change made by a signed-in user through
--   PostgREST starts a run owned by that user; pg_cron's runs have no owner.
--
-- * Row level security on wf.runs and wf.steps (not forced). wf's functions are security
--   definer and owned by the tables' owner, and so are the views of 0006: the owner bypasses
--   RLS, so the hot path (claim, complete …) and the dashboards (wf_reader, wf_admin) see
--   every row as before, and their plans do not change. Policies:
--     runs_wf_roles / steps_wf_roles  wf_reader, wf_worker, wf_admin read every row (they
--                                     have no table privileges today; this only says what
--                                     they would see if an operator granted some)
--     runs_owner                      Supabase's `authenticated` reads the runs it owns
--     steps_owner                     … and the steps of those runs
--   Nothing can be inserted, updated or deleted through RLS: writes go through wf's functions.
--
-- * wf.my_runs: the app-facing read path. A security_invoker view (PostgreSQL 15), so the
--   caller's privileges and the policies apply, and it filters by owner = wf.auth_uid() on
--   top (defence in depth): one row per run the signed-in caller owns, newest first, with
--   progress and its steps in the order they were queued (status, attempt, times, output,
--   error). `authenticated` gets usage on schema wf, select on the view, the columns it reads
--   from wf.runs and wf.steps, and execute on wf.auth_uid() — nothing else (not wf.enqueue:
--   apps start runs through the `workflows` edge function, which sets the claims and calls
--   wf.enqueue itself).
--   `anon` gets nothing. Expose schema wf in the API settings and PostgREST serves
--   wf.my_runs to signed-in users as well.
--
-- * wf.grant_app_access() makes the grants and the two owner policies; this migration calls
--   it when the role `authenticated` exists (it always does on Supabase). Where the role is
--   created after wf was installed, run `select wf.grant_app_access()` once.

alter table wf.runs add column owner uuid;
-- an app lists its runs newest first: partial, so runs without an owner cost nothing here
create index runs_owner on wf.runs (owner, created_at) where owner is not null;

-- wf.auth_uid: the signed-in user of this transaction (Supabase's auth.uid()), else null
create function wf.auth_uid()
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  v_uid uuid;
  v_fn regprocedure;
begin
  -- guard: no JWT claims (plain SQL, pg_cron, the worker): no owner, no catalog lookup
  if nullif(current_setting('request.jwt.claims', true), '') is null
     and nullif(current_setting('request.jwt.claim.sub', true), '') is null then
    return null;
  end if;
  -- guard: Supabase Auth may be absent, or installed after wf; dynamic SQL so that this
  -- function compiles (and passes plpgsql_check) where schema auth does not exist
  v_fn := pg_catalog.to_regprocedure('auth.uid()');
  if v_fn is null then
    return null;
  end if;
  execute format('select %s', v_fn) into v_uid;  -- regprocedure prints as auth.uid()
  return v_uid;
end;
$$;
revoke all on function wf.auth_uid() from public;

-- after the column exists, so rows already there keep a null owner (and the table is not rewritten)
alter table wf.runs alter column owner set default wf.auth_uid();

alter table wf.runs enable row level security;
alter table wf.steps enable row level security;
create policy runs_wf_roles on wf.runs for select to wf_reader, wf_worker, wf_admin using (true);
create policy steps_wf_roles on wf.steps for select to wf_reader, wf_worker, wf_admin using (true);

create view wf.my_runs with (security_invoker = true) as
select
  r.id as run_id,
  r.workflow,
  r.version,
  r.status,
  format('%s/%s', coalesce(s.done, 0), coalesce(s.total, 0)) as progress,
  r.input,
  r.correlation_id,
  r.error,
  r.failed_step,
  r.run_at,
  r.created_at,
  r.started_at,
  r.finished_at,
  r.owner,
  coalesce(s.steps, '[]') as steps
from wf.runs r
left join lateral (
  select
    count(*) filter (where st.status in ('succeeded', 'skipped', 'failed')) as done,
    count(*) as total,
    jsonb_agg(jsonb_build_object(
      'name', st.name, 'function', st.function, 'status', st.status, 'attempt', st.attempt,
      'queued_at', st.queued_at, 'started_at', st.started_at, 'finished_at', st.finished_at,
      'output', st.output, 'error', st.error)
      order by st.queued_at nulls last, st.name) as steps
  from wf.steps st
  where st.run_id = r.id
) s on true
where r.owner = (select wf.auth_uid())
order by r.created_at desc;
comment on view wf.my_runs is
  'For apps: the runs of the signed-in user (owner = auth.uid()), newest first, with progress and steps. Security invoker: row level security applies.';
revoke all on wf.my_runs from public;

-- wf.grant_app_access: let Supabase's `authenticated` role read its own runs (idempotent)
create function wf.grant_app_access()
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
                         created_at, started_at, finished_at, owner) on wf.runs to authenticated';
  execute 'grant select (run_id, name, function, status, attempt, queued_at, started_at, finished_at,
                         output, error) on wf.steps to authenticated';
  execute 'grant select on wf.my_runs to authenticated';
  execute 'grant execute on function wf.auth_uid() to authenticated';
end;
$$;
revoke all on function wf.grant_app_access() from public;

do $$
begin
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'authenticated') then
    perform wf.grant_app_access();
  end if;
end
$$;
