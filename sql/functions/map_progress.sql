-- wf.map_progress: after a map step expanded or one of its items became final. While items
-- wait, keep max_parallel of them queued or running (in item order). When every item is final
-- the map step ends: succeeded with the list of the items' outputs in item order (a skipped
-- item gives null), or — when an item failed or died — failed (on_failure continue: the run
-- goes on, its output holds null for the failed items) or dead (abort: the dead item already
-- failed the run and sits in the DLQ). Callers hold the run lock.
create or replace function wf.map_progress(p_run_id uuid, p_map_step text)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_map record;
  v_counts record;
  v_item record;
  v_msg_id bigint;
  v_outputs jsonb;
  v_queued jsonb;
  v_status text;
  v_error text;
begin
  select s.status, s.attempt, s.started_at, s.lease_until, wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority) as queue, st.queue as stage_queue,
         r.status as run_status, d.max_parallel,
         d.on_failure
  into v_map
  from wf.steps s
  join wf.runs r on r.id = s.run_id
  join wf.stages st on st.name = s.function
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
  where s.run_id = p_run_id and s.name = p_map_step;
  -- guard: the map step stopped (its run was cancelled, or it was answered already), or is
  -- not waiting for its items (claimed to expand again after wf.retry: its expansion goes on)
  if v_map.status is distinct from 'running' or v_map.lease_until is not null then
    return;
  end if;

  select count(*) filter (where i.status = 'waiting') as waiting,
         count(*) filter (where i.status in ('queued', 'running', 'retrying')) as active,
         count(*) filter (where i.status in ('failed', 'dead')) as failed,
         count(*) filter (where i.status = 'dead') as dead,
         count(*) filter (where i.status = 'cancelled') as cancelled,
         count(*) as total
  into v_counts
  from wf.steps i where i.run_id = p_run_id and i.map_step = p_map_step;

  -- more items start while there is room (and the run is open: a paused run starts nothing)
  if v_counts.waiting > 0 and v_map.run_status in ('scheduled', 'pending', 'running') then
    for v_item in
      select i.name from wf.steps i
      where i.run_id = p_run_id and i.map_step = p_map_step and i.status = 'waiting'
      order by i.item
      limit greatest(0, coalesce(v_map.max_parallel, 1000) - v_counts.active)
    loop
      v_msg_id := pgmq.send(v_map.queue, jsonb_build_object('run_id', p_run_id, 'step', v_item.name), 0);
      update wf.steps s set status = 'queued', msg_id = v_msg_id, queued_at = clock_timestamp()
      where s.run_id = p_run_id and s.name = v_item.name;
    end loop;
    if found then
      perform pg_notify('wf', v_map.stage_queue);
    end if;
    return;
  end if;
  if v_counts.active > 0 or v_counts.waiting > 0 then
    return;
  end if;

  -- every item is final: the map step ends
  select jsonb_agg(case when i.status = 'succeeded' then i.output end order by i.item) into v_outputs
  from wf.steps i where i.run_id = p_run_id and i.map_step = p_map_step;
  if v_counts.failed + v_counts.cancelled = 0 then
    v_status := 'succeeded';
  else
    v_status := case when v_counts.dead > 0 or v_map.on_failure <> 'continue' then 'dead' else 'failed' end;
    v_error := format('%s of %s items failed', v_counts.failed + v_counts.cancelled, v_counts.total);
  end if;
  update wf.steps s
  set status = v_status, output = v_outputs, error = v_error, finished_at = clock_timestamp(), lease_until = null
  where s.run_id = p_run_id and s.name = p_map_step;
  if v_map.run_status in ('scheduled', 'pending', 'running') then
    v_queued := wf.advance(p_run_id);
  end if;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (p_run_id, p_map_step, v_map.attempt, v_status,
          jsonb_strip_nulls(jsonb_build_object('items', v_counts.total, 'failed_items', nullif(v_counts.failed, 0),
            'error', v_error, 'duration_ms', round(extract(epoch from clock_timestamp() - v_map.started_at) * 1000),
            'queued', nullif(v_queued, '{}'::jsonb))));
  if v_map.run_status in ('scheduled', 'pending', 'running') and coalesce(v_queued, '{}'::jsonb) = '{}' then
    perform wf.close_if_done(p_run_id);
  end if;
end;
$$;

revoke all on function wf.map_progress(uuid, text) from public;
