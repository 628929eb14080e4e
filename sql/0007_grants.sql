-- wf 0007: privileges. Nothing is granted to public. Three roles carry the grants;
-- give them to login roles: `grant wf_worker to my_worker_login`.
--   wf_reader — the views
--   wf_worker — what the consumer calls (claim, complete, fail, extend, skip, tick)
--   wf_admin  — everything in the API (define, enqueue, cancel, retry, schedules …)
-- The API functions are security definer (with an empty search_path) so these
-- roles need no privileges on the private tables.

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

revoke all on all tables in schema wf from public;
revoke all on all sequences in schema wf from public;
revoke all on all functions in schema wf from public;
-- guard: `alter default privileges in schema wf revoke execute ... from public` would do
-- nothing (a per-schema entry cannot take away the global default, execute for public), so
-- every later migration that creates a function revokes it itself; tests/sql/test_lint.py
-- checks that nothing in wf is executable by public. Public has no usage on schema wf either.

alter function wf.define(jsonb) security definer;
alter function wf.activate(text) security definer;
alter function wf.deactivate(text) security definer;
alter function wf.enqueue(text, jsonb, text, timestamptz, text) security definer;
alter function wf.cancel(uuid, text) security definer;
alter function wf.retry(uuid) security definer;
alter function wf.schedule(text, text, text, jsonb) security definer;
alter function wf.unschedule(text) security definer;
alter function wf.fire_schedule(text) security definer;
alter function wf.claim(text, int) security definer;
alter function wf.complete(uuid, text, int, jsonb) security definer;
alter function wf.complete_batch(uuid[], text[], int[], jsonb[]) security definer;
alter function wf.fail(uuid, text, int, text, boolean, int, int) security definer;
alter function wf.extend(uuid, text, int, int) security definer;
alter function wf.skip(uuid, text, int, text) security definer;
alter function wf.tick() security definer;

grant usage on schema wf to wf_reader, wf_worker, wf_admin;
grant select on wf.runs_overview, wf.step_timeline, wf.stage_health, wf.failures, wf.stuck,
  wf.dead_letters, wf.workflow_stats, wf.run_history to wf_reader, wf_admin;
grant execute on function wf.claim(text, int), wf.complete(uuid, text, int, jsonb),
  wf.complete_batch(uuid[], text[], int[], jsonb[]),
  wf.fail(uuid, text, int, text, boolean, int, int), wf.extend(uuid, text, int, int),
  wf.skip(uuid, text, int, text), wf.tick(), wf.worker_stages(), wf.tick_scheduled() to wf_worker, wf_admin;
grant execute on function wf.define(jsonb), wf.activate(text), wf.deactivate(text),
  wf.enqueue(text, jsonb, text, timestamptz, text), wf.cancel(uuid, text), wf.retry(uuid),
  wf.schedule(text, text, text, jsonb), wf.unschedule(text), wf.fire_schedule(text) to wf_admin;
grant wf_reader to wf_admin;
-- the views read operator settings
grant execute on function wf.setting(text) to wf_reader, wf_admin;
-- guard: views run their functions as the reader, so the two they call read as their owner
alter function wf.setting(text) security definer;
grant execute on function wf.queue_metrics(text) to wf_reader, wf_admin;
-- creating a trigger needs execute on its function (firing it does not)
grant execute on function wf.enqueue_trigger() to wf_admin;
