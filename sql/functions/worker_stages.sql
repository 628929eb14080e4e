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
          from unnest(array_remove(array[st.queue, st.queue_hi, st.queue_lo], null)) as b(queue)
          cross join lateral pgmq.metrics(b.queue) m)
  from wf.stages st
$$;

revoke all on function wf.worker_stages() from public;
grant execute on function wf.worker_stages() to wf_worker, wf_admin;
