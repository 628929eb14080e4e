-- wf.worker_stages: what a worker needs to know of the stages (a wf_worker login reads no tables)
create or replace function wf.worker_stages()
returns table (name text, queue text, max_concurrency int, queue_length bigint)
language sql
stable
security definer
set search_path = ''
as $$
  select st.name, st.queue, st.max_concurrency,
         (select sum(m.queue_length)::bigint
          from wf.stage_queues() b
          cross join lateral pgmq.metrics(b.queue) m
          where b.stage = st.name)
  from wf.stages st
$$;

revoke all on function wf.worker_stages() from public;
grant execute on function wf.worker_stages() to wf_worker, wf_admin;
