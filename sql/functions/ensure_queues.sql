-- wf.ensure_queues: re-creates every queue of wf's that is missing (each stage's queue and
-- priority bands, and wf_dlq) and returns the names it re-created, in order. pgmq 1.4.4 makes
-- every queue table a member of its extension, so pg_dump / `supabase db dump` leave them out
-- and a restored database has wf's stages without their queues; `wf install` and wf.tick call
-- this so that enqueue, claim and the views work again (pgmq.create keeps pgmq.meta's row).
-- Security definer: wf_admin may call it after a restore without any access to schema pgmq.
create or replace function wf.ensure_queues()
returns text[]
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_queue text;
  v_created text[] := '{}'::text[];
begin
  for v_queue in
    select q.queue from wf.stage_queues() q
    union
    select 'wf_dlq'
    order by 1
  loop
    -- guard: a queue and its archive are created together; either one missing re-creates both
    continue when to_regclass(format('pgmq.%I', 'q_' || v_queue)) is not null
              and to_regclass(format('pgmq.%I', 'a_' || v_queue)) is not null;
    perform pgmq.create(v_queue);
    v_created := v_created || v_queue;
  end loop;
  return v_created;
end;
$$;

revoke all on function wf.ensure_queues() from public;
grant execute on function wf.ensure_queues() to wf_admin;
