-- wf.hold_stage_room: a claim on a stage with limits started these attempts: each holds a lease
-- (max_concurrency) and spends a token (rate_per_second). Called by wf.claim after
-- wf.stage_room, under the stage row's lock.
create or replace function wf.hold_stage_room(p_stage text, p_run_ids uuid[], p_steps text[], p_attempts int[])
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_stage record;
begin
  select st.max_concurrency, st.rate_per_second into v_stage from wf.stages st where st.name = p_stage;
  if v_stage.max_concurrency is not null then
    insert into wf.stage_leases (stage, run_id, step, attempt)
    select p_stage, u.run_id, u.step, u.attempt from unnest(p_run_ids, p_steps, p_attempts) as u(run_id, step, attempt)
    on conflict on constraint stage_leases_pkey do update set attempt = excluded.attempt;
  end if;
  -- the bucket wf.stage_room refilled in this transaction pays for what started
  if v_stage.rate_per_second is not null then
    update wf.stages st set tokens = st.tokens - cardinality(p_run_ids) where st.name = p_stage;
  end if;
end;
$$;

revoke all on function wf.hold_stage_room(text, uuid[], text[], int[]) from public;
