-- wf.advance: queue every waiting step whose dependencies are final. Returns what it
-- queued ({"step": delay_seconds, ...}); the caller records that in the event that caused
-- it, so a run's history shows every step being queued without a row of its own.
-- Callers hold the run lock.
create or replace function wf.advance(p_run_id uuid)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_step record;
  v_delay int;
  v_msg_id bigint;
  v_queued jsonb := '{}'::jsonb;
begin
  for v_step in
    select s.name, st.queue as stage_queue, wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority) as queue,
           d.delay_seconds, r.run_at
    from wf.steps s
    join wf.runs r on r.id = s.run_id
    join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
    join wf.stages st on st.name = d.function
    where s.run_id = p_run_id
      and s.status = 'waiting'
      and not exists (
        select 1 from wf.steps dep
        where dep.run_id = s.run_id and dep.name = any (d.depends_on)
          and dep.status not in ('succeeded', 'failed', 'skipped'))
    order by d.position
  loop
    v_delay := greatest(v_step.delay_seconds,
                        coalesce(ceil(extract(epoch from v_step.run_at - clock_timestamp()))::int, 0));
    select pgmq.send(v_step.queue, jsonb_build_object('run_id', p_run_id, 'step', v_step.name), v_delay) into v_msg_id;
    -- every send wakes the stage's consumers (README, "Concepts"), a delayed one too: cheap, and
    -- a consumer that finds nothing visible yet goes back to its poll
    perform pg_notify('wf', v_step.stage_queue);
    update wf.steps s
    set status = 'queued', msg_id = v_msg_id, queued_at = clock_timestamp() + make_interval(secs => v_delay)
    where s.run_id = p_run_id and s.name = v_step.name;
    v_queued := v_queued || jsonb_build_object(v_step.name, v_delay);
  end loop;
  return v_queued;
end;
$$;

revoke all on function wf.advance(uuid) from public;
