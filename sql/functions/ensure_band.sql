-- wf.ensure_band: the band queue (`<queue>_hi` or `<queue>_lo`) of a stage, created the first
-- time a run with that sign of priority needs it. Names stay within pgmq's 47 characters (a
-- stage queue is at most 47; its first 44 keep the hash suffix of a long name).
create or replace function wf.ensure_band(p_stage text, p_priority int)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_stage record;
  v_queue text;
begin
  if p_priority = 0 then
    return;
  end if;
  select st.queue, st.queue_hi, st.queue_lo into v_stage from wf.stages st where st.name = p_stage;
  if (p_priority > 0 and v_stage.queue_hi is not null) or (p_priority < 0 and v_stage.queue_lo is not null) then
    return;
  end if;
  -- the stage row's lock, then a second look: a concurrent enqueue may have created it
  select st.queue, st.queue_hi, st.queue_lo into v_stage from wf.stages st where st.name = p_stage for update;
  if (p_priority > 0 and v_stage.queue_hi is not null) or (p_priority < 0 and v_stage.queue_lo is not null) then
    return;
  end if;
  v_queue := left(v_stage.queue, 44) || case when p_priority > 0 then '_hi' else '_lo' end;
  -- guard: a band queue is never another stage's queue (a function may be named "x-hi")
  if exists (select 1 from wf.stages st where st.queue = v_queue or st.queue_hi = v_queue or st.queue_lo = v_queue) then
    v_queue := left(v_stage.queue, 35) || '_' || left(md5(v_stage.queue), 8) || case when p_priority > 0 then '_hi' else '_lo' end;
  end if;
  perform pgmq.create(v_queue);
  update wf.stages st
  set queue_hi = case when p_priority > 0 then v_queue else st.queue_hi end,
      queue_lo = case when p_priority < 0 then v_queue else st.queue_lo end
  where st.name = p_stage;
end;
$$;

revoke all on function wf.ensure_band(text, int) from public;
