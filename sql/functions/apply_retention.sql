-- wf.apply_retention: wf.tick's clean-up, so that every table wf writes stays bounded under
-- steady load. Finished runs past retention_days (wf.settings; a fraction of a day is allowed) go
-- with their steps, events and signals, and their dead steps' messages leave the wf_dlq queue;
-- then the messages the queues archived before the same cutoff (pgmq keeps them forever), and
-- dead-letter messages left without a run. All in batches of a few hundred rows (short locks,
-- no rewrite: vacuum reuses the space) until p_budget is spent — the runs at most 60% of it, so
-- that the archives keep up; runs another tick is deleting are skipped. Returns what it deleted.
create or replace function wf.apply_retention(p_budget interval default interval '400 milliseconds')
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_cutoff timestamptz := clock_timestamp() - (wf.setting('retention_days'))::numeric * interval '1 day';
  v_until timestamptz := clock_timestamp() + p_budget;
  v_runs_until timestamptz := clock_timestamp() + p_budget * 0.6;
  v_batch constant int := 500;
  v_runs int := 0;
  v_archived int := 0;
  v_dlq int := 0;
  v_n int;
  v_dead bigint[];
  v_queue text;
begin
  loop
    with old as (
      select r.id from wf.runs r
      where r.status in ('completed', 'failed', 'cancelled', 'compensation_failed')
        and r.created_at < v_cutoff and r.finished_at < v_cutoff
      limit v_batch
      for update skip locked
    ), dead as (
      select s.dlq_msg_id from wf.steps s join old on s.run_id = old.id where s.dlq_msg_id is not null
    ), history as (
      delete from wf.events e using old where e.run_id = old.id
    ), gone as (
      delete from wf.runs r using old where r.id = old.id returning r.id
    )
    select (select count(*) from gone), (select array_agg(dead.dlq_msg_id) from dead) into v_n, v_dead;
    if v_dead is not null then
      perform pgmq.delete('wf_dlq', v_dead);
      v_dlq := v_dlq + cardinality(v_dead);
    end if;
    v_runs := v_runs + v_n;
    exit when v_n < v_batch or clock_timestamp() >= v_runs_until;
  end loop;

  -- the archives: every queue of wf's (each priority band, and wf_dlq's retried dead letters)
  for v_queue in
    select q.queue from wf.stage_queues() q
    union all select 'wf_dlq'
  loop
    exit when clock_timestamp() >= v_until;
    -- guard: a queue dropped behind wf's back has no archive to trim
    continue when to_regclass(format('pgmq.%I', 'a_' || v_queue)) is null;
    loop
      execute format('delete from pgmq.%1$I a where a.msg_id in (select o.msg_id from pgmq.%1$I o '
                     'where o.archived_at < $1 limit $2)', 'a_' || v_queue)
        using v_cutoff, v_batch * 4;
      get diagnostics v_n = row_count;
      v_archived := v_archived + v_n;
      exit when v_n < v_batch * 4 or clock_timestamp() >= v_until;
    end loop;
  end loop;

  -- dead letters whose run is gone (deleted before this clean-up existed) or that name none (a
  -- malformed message the claim set aside), once past the cutoff
  if clock_timestamp() < v_until then
    with orphans as (
      select m.msg_id from pgmq.q_wf_dlq m
      where m.enqueued_at < v_cutoff
        and not exists (select 1 from wf.runs r
                        where m.message ->> 'run_id' ~ '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
                          and r.id = (m.message ->> 'run_id')::uuid)
      limit v_batch * 4
    ), gone as (
      delete from pgmq.q_wf_dlq m using orphans o where m.msg_id = o.msg_id returning 1
    )
    select count(*) into v_n from gone;
    v_dlq := v_dlq + v_n;
  end if;

  return jsonb_build_object('deleted_runs', v_runs, 'deleted_archived', v_archived, 'deleted_dead_letters', v_dlq);
end;
$$;

revoke all on function wf.apply_retention(interval) from public;
