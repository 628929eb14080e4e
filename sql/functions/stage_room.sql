-- wf.stage_room: how many steps a claim may start on a stage with limits (wf.configure_stage),
-- at most qty. Takes the stage row's lock until the claim commits, so claims of that stage by
-- every worker count one after the other; drops leases whose attempt is no longer running
-- (answered, cancelled) or whose lease ran out (a dead worker's), and refills the rate limit's
-- token bucket.
create or replace function wf.stage_room(p_stage text, p_qty int)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_stage record;
  v_room int := p_qty;
  v_busy int;
  v_tokens numeric;
begin
  select st.max_concurrency, st.rate_per_second, st.burst, st.tokens, st.tokens_at into v_stage
  from wf.stages st where st.name = p_stage for update;
  if v_stage.max_concurrency is not null then
    delete from wf.stage_leases l
    where l.stage = p_stage
      and not exists (select 1 from wf.steps s
                      where s.run_id = l.run_id and s.name = l.step and s.attempt = l.attempt and s.status = 'running'
                        -- guard: a lost attempt (its lease ran out) holds no room: its message comes back
                        and s.lease_until > clock_timestamp());
    select count(*) into v_busy from wf.stage_leases l where l.stage = p_stage;
    v_room := least(v_room, v_stage.max_concurrency - v_busy);
  end if;
  if v_stage.rate_per_second is not null then
    -- the bucket refilled up to now (wf.hold_stage_room spends from it)
    update wf.stages st
    set tokens = least(v_stage.burst::numeric,
                       coalesce(v_stage.tokens + v_stage.rate_per_second * extract(epoch from clock_timestamp() - v_stage.tokens_at),
                                v_stage.burst)),
        tokens_at = clock_timestamp()
    where st.name = p_stage
    returning st.tokens into v_tokens;
    v_room := least(v_room, floor(v_tokens)::int);
  end if;
  return greatest(v_room, 0);
end;
$$;

revoke all on function wf.stage_room(text, int) from public;
