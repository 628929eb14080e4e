-- wf.advance_runs: wf.advance for the runs of a batch — queue every waiting step whose
-- dependencies are final, with one pgmq.send_batch per queue and delay and one notify
-- per queue. Returns what it queued. Callers hold the runs' locks. wf.advance stays the
-- path of a single run (enqueue, one answer): for one message pgmq.send and plans made
-- for the run at hand cost less than the batch machinery.
--
-- It keeps one generic plan per statement and session (plan_cache_mode =
-- force_generic_plan: a custom plan per call re-planned every statement, twice the cost)
-- and may not scan a table sequentially (enable_seqscan = off): a plan made while the
-- tables were small would keep its sequential scans for the session, and every access
-- here goes by key (tests/sql/test_regressions.py checks it).
create or replace function wf.advance_runs(p_run_ids uuid[])
returns table (run_id uuid, step text, delay_seconds int)
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_batch record;
begin
  for v_batch in
    select x.queue, x.stage_queue, x.delay, array_agg(x.run_id order by x.run_id, x.position) as run_ids,
           array_agg(x.name order by x.run_id, x.position) as names
    from (
      select s.run_id, s.name, wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority) as queue,
             st.queue as stage_queue, d.position,
             greatest(d.delay_seconds, coalesce(ceil(extract(epoch from r.run_at - clock_timestamp()))::int, 0)) as delay
      from unnest(p_run_ids) as u(run_id)
      join wf.runs r on r.id = u.run_id
      join wf.steps s on s.run_id = u.run_id
      join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
      join wf.stages st on st.name = d.function
      where s.status = 'waiting'
        and not exists (
          select 1 from wf.steps dep
          where dep.run_id = s.run_id and dep.name = any (d.depends_on)
            and dep.status not in ('succeeded', 'failed', 'skipped'))
    ) x
    group by x.queue, x.stage_queue, x.delay
  loop
    -- every send wakes the stage's consumers (README, "Concepts"), a delayed one too: cheap, and
    -- a consumer that finds nothing visible yet goes back to its poll
    perform pg_notify('wf', v_batch.stage_queue);
    -- send_batch numbers the messages in the order given: the i-th smallest id is the i-th
    -- step's. (text, jsonb[], int) is the form Supabase's pgmq 1.4.4 has too (tests/sql/test_lint.py).
    return query
    with sent as (
      select array_agg(m.msg_id order by m.msg_id) as msg_ids
      from pgmq.send_batch(v_batch.queue,
             array(select jsonb_build_object('run_id', q.run_id, 'step', q.name)
                   from unnest(v_batch.run_ids, v_batch.names) with ordinality as q(run_id, name, i)
                   order by q.i),
             v_batch.delay) as m(msg_id)
    ), queued as (
      update wf.steps s
      set status = 'queued', msg_id = sent.msg_ids[q.i],
          queued_at = clock_timestamp() + make_interval(secs => v_batch.delay)
      from sent, unnest(v_batch.run_ids, v_batch.names) with ordinality as q(run_id, name, i)
      where s.run_id = q.run_id and s.name = q.name
      returning s.run_id, s.name
    )
    select queued.run_id, queued.name, v_batch.delay from queued;
  end loop;
end;
$$;

revoke all on function wf.advance_runs(uuid[]) from public;
