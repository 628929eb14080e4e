-- wf.complete_batch: wf.complete for many answers in one transaction (the worker's group
-- commit). Each answer is fenced on its own attempt exactly as wf.complete does: an answer
-- for anything but the step's running attempt, or a second answer for the same attempt,
-- is recorded as a stale_answer event. Returns how many answers changed a step.
--
-- It keeps one generic plan per statement and session (plan_cache_mode =
-- force_generic_plan: a custom plan per call re-planned every statement, twice the cost)
-- and may not scan a table sequentially (enable_seqscan = off): a plan made while the
-- tables were small would keep its sequential scans for the session, and every access
-- here goes by key (tests/sql/test_regressions.py checks it).
create or replace function wf.complete_batch(run_ids uuid[], steps text[], attempts int[], outputs jsonb[])
returns int
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_bad int;
  v_unknown int;
  v_oversized int[];
  v_ord int;
  v_max_bytes int;
  v_failed int := 0;
  v_ords int[];
  v_durations numeric[];
  v_stages text[];
  v_runs uuid[];
  v_queues text[];
  v_msg_ids bigint[];
  v_children uuid[];
  v_maps text[];
  v_compensating uuid[];
begin
  -- guard: one value of each per answer, none of them null
  if cardinality(run_ids) is distinct from cardinality(steps) or cardinality(run_ids) is distinct from cardinality(attempts)
     or cardinality(run_ids) is distinct from cardinality(outputs) then
    perform wf.raise_input_error('complete_batch needs as many steps, attempts and outputs as run_ids');
  end if;
  v_bad := least(array_position(run_ids, null), array_position(steps, null), array_position(attempts, null));
  if v_bad is not null then
    perform wf.raise_input_error(format('complete needs run_id, step and attempt (got %s, %s, %s)',
      coalesce(run_ids[v_bad]::text, 'null'), coalesce(steps[v_bad], 'null'), coalesce(attempts[v_bad]::text, 'null')));
  end if;

  -- every run of the batch is locked first, in run id order, as wf.claim does
  perform pg_advisory_xact_lock(7001, hashtext(l.run_id::text))
  from (select distinct u as run_id from unnest(run_ids) u order by 1) l;

  -- guard: late answers from lost attempts, answers for steps cancelled meanwhile, and
  -- repeated answers within the batch are recorded and otherwise ignored; an answer for a
  -- step that does not exist, or an output too large to store, is picked out for below
  with a as (
    select u.run_id, u.step, u.attempt, u.ord::int as ord, octet_length(u.output::text) as size,
           row_number() over (partition by u.run_id, u.step, u.attempt order by u.ord) as nth
    from unnest(run_ids, steps, attempts, outputs) with ordinality as u(run_id, step, attempt, output, ord)
  ), checked as (
    select a.*, s.name is not null as known, s.status, s.attempt as current_attempt,
           s.status = 'running' and s.attempt = a.attempt and a.nth = 1 as current
    from a left join wf.steps s on s.run_id = a.run_id and s.name = a.step
  ), stale as (
    insert into wf.events (run_id, step, attempt, kind, detail)
    select c.run_id, c.step, c.attempt, 'stale_answer',
           jsonb_build_object('answer', 'complete', 'step_status', c.status, 'current_attempt', c.current_attempt)
    from checked c where c.known and not c.current
    order by c.ord
  )
  select min(c.ord) filter (where not c.known),
         array_agg(c.ord order by c.ord) filter (where c.current and c.size >
           (select st.value::int from wf.settings st where st.key = 'max_output_bytes'))
  into v_unknown, v_oversized
  from checked c;
  if v_unknown is not null then
    raise exception 'unknown step % of run %', steps[v_unknown], run_ids[v_unknown] using errcode = 'P0002';
  end if;

  -- guard: an output too large to store fails the step, as in wf.complete (rare: one by one)
  if v_oversized is not null then
    v_max_bytes := (select st.value::int from wf.settings st where st.key = 'max_output_bytes');
    foreach v_ord in array v_oversized loop
      perform wf.fail(run_ids[v_ord], steps[v_ord], attempts[v_ord],
        format('output is %s bytes, more than the %s stored', octet_length(outputs[v_ord]::text), v_max_bytes), false);
      v_failed := v_failed + 1;
    end loop;
  end if;

  -- the common case, set-based: the running attempt succeeded
  with a as (
    select distinct on (u.run_id, u.step, u.attempt) u.run_id, u.step, u.attempt, u.output, u.ord::int as ord
    from unnest(run_ids, steps, attempts, outputs) with ordinality as u(run_id, step, attempt, output, ord)
    order by u.run_id, u.step, u.attempt, u.ord
  ), done as (
    update wf.steps s
    set status = 'succeeded', output = a.output, error = null, http_status = null,
        finished_at = clock_timestamp(), lease_until = null
    from a
    where s.run_id = a.run_id and s.name = a.step and s.status = 'running' and s.attempt = a.attempt
    returning a.ord, s.run_id, s.msg_id, s.function, s.map_step, s.compensates,
              round(extract(epoch from clock_timestamp() - s.started_at) * 1000) as duration_ms
  )
  select array_agg(done.ord order by done.ord), array_agg(done.duration_ms order by done.ord),
         array_agg(done.function order by done.ord),
         coalesce(array_agg(distinct done.run_id) filter (where r.status in ('scheduled', 'pending', 'running')), '{}'),
         array_agg(wf.step_queue(st.queue, st.queue_hi, st.queue_lo, r.priority)), array_agg(done.msg_id),
         array_agg(distinct done.run_id::text || '/' || done.map_step) filter (where done.map_step is not null),
         array_agg(distinct done.run_id) filter (where done.compensates is not null)
  into v_ords, v_durations, v_stages, v_runs, v_queues, v_msg_ids, v_maps, v_compensating
  from done
  join wf.runs r on r.id = done.run_id
  join wf.stages st on st.name = done.function;
  if v_ords is null then
    return v_failed;
  end if;

  -- the runs still open move on, their next steps queued in one go; one event per answer,
  -- in answer order, and what a run queued is told by its last answer
  with queued as (
    select a.run_id, jsonb_object_agg(a.step, a.delay_seconds) as queued
    from wf.advance_runs(v_runs) a group by a.run_id
  ), answered as (
    select run_ids[u.o] as run_id, steps[u.o] as step, attempts[u.o] as attempt, u.o as ord, u.duration_ms,
           u.stage, u.o = max(u.o) over (partition by run_ids[u.o]) as last_of_run
    from unnest(v_ords, v_durations, v_stages) as u(o, duration_ms, stage)
  )
  insert into wf.events (run_id, step, attempt, kind, stage, detail)
  select an.run_id, an.step, an.attempt, 'succeeded', an.stage,
         jsonb_build_object('duration_ms', an.duration_ms)
           || case when an.last_of_run and q.queued is not null then jsonb_build_object('queued', q.queued)
                   else '{}'::jsonb end
  from answered an
  left join queued q on q.run_id = an.run_id
  order by an.ord;

  -- a run with nothing left to do completes, with its output; a child run's parent is told, a
  -- run waiting for its concurrency key starts
  with closed as (
    update wf.runs r
    set status = 'completed', finished_at = clock_timestamp(),
        -- the final steps' outputs, set-based; an output_template is rendered by wf.run_output
        output = case when d.output_template is null
                      then (select coalesce(jsonb_object_agg(f.name, f.output), '{}'::jsonb) from wf.steps f
                            where f.run_id = r.id and f.name = any (d.final_steps))
                      else wf.run_output(r.id) end
    from unnest(v_runs) as u(run_id), wf.definitions d
    where r.id = u.run_id and d.workflow = r.workflow and d.version = r.version
      and not exists (select 1 from wf.steps s
                      where s.run_id = r.id
                        and s.status not in ('succeeded', 'failed', 'skipped', 'dead', 'cancelled'))
    returning r.id, r.parent_run_id, r.concurrency_limit
  ), logged as (
    insert into wf.events (run_id, step, attempt, kind, detail)
    select closed.id, null, null, 'run_completed', null from closed order by closed.id
  )
  select array_agg(closed.id order by closed.id)
           filter (where closed.parent_run_id is not null or closed.concurrency_limit is not null)
  into v_children from closed;
  if v_children is not null then
    perform wf.run_ended(c) from unnest(v_children) c;
  end if;

  -- answered items of map steps: the next items start, or their map steps end
  if v_maps is not null then
    perform wf.map_progress(split_part(m, '/', 1)::uuid, substr(m, 38)) from unnest(v_maps) m;
  end if;

  -- answered compensations: the next one starts, or the run is failed
  if v_compensating is not null then
    perform wf.compensate_progress(c) from unnest(v_compensating) c;
  end if;

  -- the answered messages are archived once per queue
  perform pgmq.archive(x.queue, x.msg_ids)
  from (select a.queue, array_agg(a.msg_id) as msg_ids
        from unnest(v_queues, v_msg_ids) as a(queue, msg_id) group by a.queue) x;
  return cardinality(v_ords) + v_failed;
end;
$$;

revoke all on function wf.complete_batch(uuid[], text[], int[], jsonb[]) from public;
grant execute on function wf.complete_batch(uuid[], text[], int[], jsonb[]) to wf_worker, wf_admin;
