-- wf roles: the three roles wf's grants go to. Roles belong to the cluster, not to the
-- database, so they are made first, before any migration or routine file grants to them,
-- at every install (a database restored into another cluster gets them back).
-- Give them to login roles: `grant wf_worker to my_worker_login`.
--   wf_reader — the views
--   wf_worker — what the consumer calls (claim, complete, fail, extend, skip, tick)
--   wf_admin  — everything in the API (define, enqueue, cancel, retry, schedules …); it is
--               a wf_reader too (sql/access.sql)
do $$
declare
  v_role text;
begin
  foreach v_role in array array['wf_reader', 'wf_worker', 'wf_admin'] loop
    if not exists (select 1 from pg_catalog.pg_roles where rolname = v_role) then
      execute format('create role %I nologin', v_role);
    end if;
  end loop;
end
$$;
