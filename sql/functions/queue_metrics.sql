-- wf.queue_metrics: depth and oldest message age of a stage's queue, for wf.stage_health.
-- Security definer so that readers need no access to schema pgmq (whose functions would let
-- them send to or purge any queue); it answers only for the queues of wf's stages.
create or replace function wf.queue_metrics(p_queue text)
returns table (queue_length bigint, oldest_msg_age_sec int)
language sql
security definer
set search_path = ''
as $$
  select sum(m.queue_length)::bigint, max(m.oldest_msg_age_sec)
  from wf.stages st
  cross join lateral unnest(array_remove(array[st.queue, st.queue_hi, st.queue_lo], null)) as b(queue)
  cross join lateral pgmq.metrics(b.queue) m
  where st.queue = p_queue
$$;

revoke all on function wf.queue_metrics(text) from public;
grant execute on function wf.queue_metrics(text) to wf_reader, wf_admin;
