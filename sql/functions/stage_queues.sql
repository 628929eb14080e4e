-- wf.stage_queues: every pgmq queue of wf's stages, one row per queue: a stage's own queue and
-- its priority bands (wf.ensure_band), named once here for everything that goes through all of
-- them (depth and in-flight counts, the stuck search, retention of the archives, re-creating
-- queues after a restore). Band: -1 low, 0 the stage's own, 1 high.
create or replace function wf.stage_queues()
returns table (stage text, queue text, band int)
language sql
stable
set search_path = ''
as $$
  select st.name, b.queue, b.band
  from wf.stages st
  cross join lateral (values (st.queue_hi, 1), (st.queue, 0), (st.queue_lo, -1)) as b(queue, band)
  where b.queue is not null
  order by st.name, b.band desc
$$;

revoke all on function wf.stage_queues() from public;
grant execute on function wf.stage_queues() to wf_reader, wf_admin;
