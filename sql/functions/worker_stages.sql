-- wf.worker_stages: what a worker needs to know of the stages (a wf_worker login reads no tables)
create or replace function wf.worker_stages()
returns table (name text, queue text, max_concurrency int, queue_length bigint)
language sql
stable
security definer
set search_path = ''
as $$
  select st.name, st.queue, st.max_concurrency, m.queue_length
  from wf.stages st cross join lateral pgmq.metrics(st.queue) m
$$;

revoke all on function wf.worker_stages() from public;
grant execute on function wf.worker_stages() to wf_worker, wf_admin;
