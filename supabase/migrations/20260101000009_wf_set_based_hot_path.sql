-- wf 0009: the hot path works on a whole batch at once.
--
-- wf.claim and wf.complete_batch used to take their messages and answers one by one,
-- several statements each. They now lock every run of the batch with one statement
-- (in run id order, as before, so two batches never deadlock), then change the
-- common case — a step that waits for this very message, an answer for the running
-- attempt — with one statement per table for the whole batch, and send the next
-- steps with one pgmq.send_batch per queue and delay. Rare cases (a malformed or
-- stale message, a lost attempt, a poison step, an oversized output, a late answer)
-- keep their one-by-one path. Behaviour is unchanged; only the number of statements
-- per step shrinks.
--
-- The three batch functions keep one generic plan per statement and session
-- (plan_cache_mode = force_generic_plan: a custom plan per call re-planned every
-- statement, twice the cost) and may not scan a table sequentially (enable_seqscan =
-- off): a plan made while the tables were small would keep its sequential scans for
-- the session, and every access here goes by key.

-- wf.advance_runs: wf.advance for the runs of a batch — queue every waiting step whose
-- dependencies are final, with one pgmq.send_batch per queue and delay and one notify
-- per queue. Returns what it queued. Callers hold the runs' locks. wf.advance stays the
-- path of a single run (enqueue, one answer): for one message pgmq.send and plans made
-- for the run at hand cost less than the batch machinery.
create function wf.advance_runs(p_run_ids uuid[])
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
    select x.queue, x.delay, array_agg(x.run_id order by x.run_id, x.position) as run_ids,
           array_agg(x.name order by x.run_id, x.position) as names
    from (
      select s.run_id, s.name, st.queue, d.position,
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
    group by x.queue, x.delay
  loop
    -- every send wakes the stage's consumers (DESIGN §6), a delayed one too: cheap, and
    -- a consumer that finds nothing visible yet goes back to its poll
    perform pg_notify('wf', v_batch.queue);
    -- send_batch numbers the messages in the order given: the i-th smallest id is the i-th
    -- step's. (text, jsonb[], int) is the form Supabase's pgmq 1.4.4 has too (DESIGN §2).
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

-- wf.claim: read up to qty messages of a stage and start an attempt for each;
-- returns what the call needs (the consumer renders payload_template and
-- when_template over context, then POSTs to the function)
create or replace function wf.claim(stage text, qty int default 1)
returns table (
  run_id uuid, step text, attempt int, function text, action text, payload_template jsonb,
  when_template text, context jsonb, timeout_seconds int, workflow text, correlation_id text,
  msg_id bigint, visible_until timestamptz)
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_queue text;
  v_msg_ids bigint[];
  v_read_cts int[];
  v_vts timestamptz[];
  v_messages jsonb[];
  v_started bigint[];
  v_msg record;
  v_row record;
  v_run_id uuid;
begin
  if qty is null or qty not between 1 and 1000 then
    perform wf.raise_input_error(format('qty must be between 1 and 1000, got %s', coalesce(qty::text, 'null')));
  end if;
  select st.queue, array_agg(m.msg_id order by m.msg_id), array_agg(m.read_ct order by m.msg_id),
         array_agg(m.vt order by m.msg_id), array_agg(m.message order by m.msg_id)
  into v_queue, v_msg_ids, v_read_cts, v_vts, v_messages
  from wf.stages st
  cross join lateral pgmq.read(st.queue, st.visibility_timeout, qty) m
  where st.name = claim.stage
  group by st.queue;
  if not found then
    -- guard: nothing to claim, or no such stage
    if not exists (select 1 from wf.stages st where st.name = claim.stage) then
      raise exception 'unknown stage % (stages are created by wf.define)', coalesce(stage, 'null') using errcode = 'P0002';
    end if;
    return;
  end if;

  -- every run of the batch is locked first, in run id order, so two claims (or a claim
  -- and a complete_batch) never deadlock
  perform pg_advisory_xact_lock(7001, hashtext(l.run_id::text))
  from (select distinct (m ->> 'run_id')::uuid as run_id from unnest(v_messages) m
        where coalesce(m ->> 'run_id', '') ~ '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
        order by 1) l;

  -- the common case, set-based: the step waits for this very message, its run is open,
  -- and attempts are left
  with m as materialized (
    select u.msg_id, u.vt, (u.message ->> 'run_id')::uuid as run_id, u.message ->> 'step' as step
    from unnest(v_msg_ids, v_vts, v_messages) as u(msg_id, vt, message)
    where coalesce(u.message ->> 'run_id', '') ~ '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
      and jsonb_typeof(u.message -> 'step') = 'string'
  ), ready as (
    select m.msg_id, m.vt, s.run_id, s.name, r.status as run_status
    from m
    join wf.steps s on s.run_id = m.run_id and s.name = m.step
    join wf.runs r on r.id = s.run_id
    join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
    where s.msg_id = m.msg_id and s.status in ('queued', 'retrying')
      and r.status in ('scheduled', 'pending', 'running')
      and s.attempt - s.attempt_base < d.max_attempts
  ), started as (
    update wf.steps s
    set status = 'running', attempt = s.attempt + 1, started_at = clock_timestamp(), lease_until = ready.vt,
        stuck_at = null
    from ready
    where s.run_id = ready.run_id and s.name = ready.name
    returning s.run_id, s.name, s.attempt, ready.msg_id
  ), events as (
    insert into wf.events (run_id, step, attempt, kind, detail)
    select started.run_id, started.name, started.attempt, 'started', null from started
  ), runs as (
    update wf.runs r set status = 'running', started_at = clock_timestamp()
    from (select distinct ready.run_id from ready where ready.run_status in ('scheduled', 'pending')) w
    where r.id = w.run_id and r.status in ('scheduled', 'pending')
  )
  select coalesce(array_agg(started.msg_id), '{}') into v_started from started;

  -- the rare cases, one by one, in run order
  if cardinality(v_started) < cardinality(v_msg_ids) then
    for v_msg in
      select u.msg_id, u.read_ct, u.vt, u.message
      from unnest(v_msg_ids, v_read_cts, v_vts, v_messages) as u(msg_id, read_ct, vt, message)
      where u.msg_id <> all (v_started)
      order by u.message ->> 'run_id', u.msg_id
    loop
      -- guard: a message wf did not write
      if coalesce(v_msg.message ->> 'run_id', '') !~ '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
         or jsonb_typeof(v_msg.message -> 'step') is distinct from 'string' then
        perform pgmq.archive(v_queue, v_msg.msg_id);
        perform pgmq.send('wf_dlq', jsonb_build_object('queue', v_queue, 'msg_id', v_msg.msg_id,
          'error', 'malformed message', 'message', v_msg.message), 0);
        continue;
      end if;
      v_run_id := (v_msg.message ->> 'run_id')::uuid;

      select s.name, s.status, s.attempt, s.attempt_base, s.msg_id, r.status as run_status, d.max_attempts
      into v_row
      from wf.steps s
      join wf.runs r on r.id = s.run_id
      join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
      where s.run_id = v_run_id and s.name = v_msg.message ->> 'step';

      -- guard: the run is gone (retention), or this is not the step's message, or the step no longer waits
      if not found or v_row.msg_id is distinct from v_msg.msg_id
         or v_row.status not in ('queued', 'retrying', 'running') then
        perform pgmq.archive(v_queue, v_msg.msg_id);
        continue;
      end if;

      -- guard: the run ended (a sibling died, or it was cancelled) while this step's attempt
      -- was out; its lost attempt is not repeated for a run that is over
      if v_row.run_status in ('completed', 'failed', 'cancelled') then
        perform pgmq.archive(v_queue, v_msg.msg_id);
        update wf.steps s set status = 'cancelled', finished_at = clock_timestamp(), lease_until = null
        where s.run_id = v_run_id and s.name = v_row.name;
        insert into wf.events (run_id, step, attempt, kind, detail)
        values (v_run_id, v_row.name, v_row.attempt, 'cancelled',
                jsonb_build_object('was', v_row.status, 'reason', format('run is %s', v_row.run_status)));
        continue;
      end if;

      -- guard: the previous attempt never answered (its consumer died or lost the message)
      if v_row.status = 'running' then
        insert into wf.events (run_id, step, attempt, kind, detail)
        values (v_run_id, v_row.name, v_row.attempt, 'attempt_lost', jsonb_build_object('read_ct', v_msg.read_ct));
      end if;

      -- guard: poison — every attempt of the budget was used, the last ones without an answer
      if v_row.attempt - v_row.attempt_base >= v_row.max_attempts then
        perform wf.kill_step(v_run_id, v_row.name, v_row.attempt,
          format('step %s of run %s: no answer after %s attempts (message read %s times)',
                 v_row.name, v_run_id, v_row.max_attempts, v_msg.read_ct), null);
        continue;
      end if;

      update wf.steps s
      set status = 'running', attempt = s.attempt + 1, started_at = clock_timestamp(), lease_until = v_msg.vt,
          stuck_at = null
      where s.run_id = v_run_id and s.name = v_row.name;
      insert into wf.events (run_id, step, attempt, kind, detail)
      values (v_run_id, v_row.name, v_row.attempt + 1, 'started', null);
      if v_row.run_status in ('scheduled', 'pending') then
        update wf.runs r set status = 'running', started_at = clock_timestamp() where r.id = v_run_id;
      end if;
      v_started := v_started || v_msg.msg_id;
    end loop;
  end if;

  -- what each started attempt needs, read after the updates so the context shows them
  return query
  select s.run_id, s.name, s.attempt, claim.stage, d.action, d.payload_template, d.when_template,
         jsonb_build_object(
           'input', r.input,
           'steps', (select jsonb_object_agg(o.name, jsonb_build_object('status', o.status, 'output', o.output,
                                                                         'error', o.error))
                     from wf.steps o where o.run_id = s.run_id),
           'run', jsonb_build_object('id', s.run_id, 'workflow', r.workflow, 'version', r.version,
                                     'correlation_id', r.correlation_id, 'attempt', s.attempt)),
         d.timeout_seconds, r.workflow, r.correlation_id, u.msg_id, u.vt
  from unnest(v_msg_ids, v_vts, v_messages) as u(msg_id, vt, message)
  join wf.steps s on s.run_id = (u.message ->> 'run_id')::uuid and s.name = u.message ->> 'step'
  join wf.runs r on r.id = s.run_id
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
  where u.msg_id = any (v_started)
  order by u.message ->> 'run_id', u.msg_id;
end;
$$;

-- wf.complete_batch: wf.complete for many answers in one transaction (the worker's group
-- commit). Each answer is fenced on its own attempt exactly as wf.complete does: an answer
-- for anything but the step's running attempt, or a second answer for the same attempt,
-- is recorded as a stale_answer event. Returns how many answers changed a step.
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
  v_runs uuid[];
  v_queues text[];
  v_msg_ids bigint[];
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
    returning a.ord, s.run_id, s.msg_id, s.function,
              round(extract(epoch from clock_timestamp() - s.started_at) * 1000) as duration_ms
  )
  select array_agg(done.ord order by done.ord), array_agg(done.duration_ms order by done.ord),
         coalesce(array_agg(distinct done.run_id) filter (where r.status in ('scheduled', 'pending', 'running')), '{}'),
         array_agg(st.queue), array_agg(done.msg_id)
  into v_ords, v_durations, v_runs, v_queues, v_msg_ids
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
           u.o = max(u.o) over (partition by run_ids[u.o]) as last_of_run
    from unnest(v_ords, v_durations) as u(o, duration_ms)
  )
  insert into wf.events (run_id, step, attempt, kind, detail)
  select an.run_id, an.step, an.attempt, 'succeeded',
         jsonb_build_object('duration_ms', an.duration_ms)
           || case when an.last_of_run and q.queued is not null then jsonb_build_object('queued', q.queued)
                   else '{}'::jsonb end
  from answered an
  left join queued q on q.run_id = an.run_id
  order by an.ord;

  -- a run with nothing left to do completes
  with closed as (
    update wf.runs r set status = 'completed', finished_at = clock_timestamp()
    from unnest(v_runs) as u(run_id)
    where r.id = u.run_id
      and not exists (select 1 from wf.steps s
                      where s.run_id = r.id
                        and s.status not in ('succeeded', 'failed', 'skipped', 'dead', 'cancelled'))
    returning r.id
  )
  insert into wf.events (run_id, step, attempt, kind, detail)
  select closed.id, null, null, 'run_completed', null from closed order by closed.id;

  -- the answered messages are archived once per queue
  perform pgmq.archive(x.queue, x.msg_ids)
  from (select a.queue, array_agg(a.msg_id) as msg_ids
        from unnest(v_queues, v_msg_ids) as a(queue, msg_id) group by a.queue) x;
  return cardinality(v_ords) + v_failed;
end;
$$;

-- wf.complete: report a successful call; output becomes steps.<step>.output. One answer
-- takes the one-by-one path (fewer statements than a batch of one); the worker's group
-- commits go through wf.complete_batch, and tests keep the two histories identical.
create or replace function wf.complete(run_id uuid, step text, attempt int, output jsonb)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cur record;
  v_size int := octet_length(output::text);
  v_max_bytes int := (select s.value::int from wf.settings s where s.key = 'max_output_bytes');
begin
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'complete');
  if not found then
    return false;
  end if;
  -- guard: an output too large to store fails the step instead of bloating every later claim
  if v_size > v_max_bytes then
    return wf.fail(run_id, step, attempt, format('output is %s bytes, more than the %s stored', v_size, v_max_bytes), false);
  end if;
  perform wf.finish_step(run_id, step, attempt, 'succeeded', v_cur.queue, v_cur.msg_id, v_cur.run_status,
    output, null, null,
    jsonb_build_object('duration_ms', round(extract(epoch from clock_timestamp() - v_cur.started_at) * 1000)));
  return true;
end;
$$;
