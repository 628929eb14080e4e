-- wf.claim: read up to qty messages of a stage and start an attempt for each;
-- returns what the call needs (the consumer renders payload_template and
-- when_template over context, then POSTs to the function — or, by kind, starts the
-- child run or runs the SQL step; not_before first).
-- A map step's first claim returns its for_each template (the worker renders the list and calls
-- wf.expand_map); its items, steps named `<step>[<i>]`, come back with item set and the item in
-- their context.
-- A stage with limits (wf.configure_stage) starts only what wf.stage_room allows, under the
-- stage row's lock, and its started attempts hold leases (wf.hold_stage_room).
-- On the internal stage `_wf` some messages are handled here and not returned: a child
-- run became final (wf.finish_child), a wait_for step starts waiting (wf.start_wait), and
-- its timer fires (wf.wait_timed_out).
--
-- It keeps one generic plan per statement and session (plan_cache_mode =
-- force_generic_plan: a custom plan per call re-planned every statement, twice the cost)
-- and may not scan a table sequentially (enable_seqscan = off): a plan made while the
-- tables were small would keep its sequential scans for the session, and every access
-- here goes by key (tests/sql/test_regressions.py checks it).
create or replace function wf.claim(stage text, qty int default 1)
returns table (
  run_id uuid, step text, attempt int, function text, action text, payload_template jsonb,
  when_template text, context jsonb, timeout_seconds int, workflow text, correlation_id text,
  msg_id bigint, visible_until timestamptz, kind text, not_before text, offset_seconds int, item int,
  for_each text)
language plpgsql
security definer
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_queue text;
  v_msg_ids bigint[];
  v_read_cts int[] := '{}'::int[];
  v_vts timestamptz[] := '{}'::timestamptz[];
  v_messages jsonb[] := '{}'::jsonb[];
  v_started bigint[];  -- ordinals in the batch: msg ids repeat across a stage's priority bands
  v_msg record;
  v_row record;
  v_run_id uuid;
  v_qty int;
  v_limited boolean;
  v_stage record;
  v_msg_queues text[] := '{}'::text[];
  v_busy text[];  -- runs another transaction holds: their messages are given back
begin
  if qty is null or qty not between 1 and 1000 then
    perform wf.raise_input_error(format('qty must be between 1 and 1000, got %s', coalesce(qty::text, 'null')));
  end if;
  select st.queue, st.queue_hi, st.queue_lo, st.visibility_timeout, st.paused,
         st.max_concurrency is not null or st.rate_per_second is not null as limited
  into v_stage
  from wf.stages st where st.name = claim.stage;
  if not found then
    raise exception 'unknown stage % (stages are created by wf.define)', coalesce(stage, 'null') using errcode = 'P0002';
  end if;
  -- guard: a paused stage's messages wait untouched
  if v_stage.paused then
    return;
  end if;
  v_qty := qty;
  -- a stage with limits across workers (wf.configure_stage): only as many as it has room for
  v_limited := v_stage.limited;
  if v_limited then
    v_qty := wf.stage_room(claim.stage, qty);
    if v_qty = 0 then
      return;
    end if;
  end if;
  -- the priority bands in order: high, the stage's own queue, low (wf.ensure_band made them)
  v_msg_ids := '{}'::bigint[];
  foreach v_queue in array array_remove(array[v_stage.queue_hi, v_stage.queue, v_stage.queue_lo], null) loop
    exit when cardinality(v_msg_ids) >= v_qty;
    select v_msg_ids || coalesce(array_agg(m.msg_id order by m.msg_id), '{}'),
           v_read_cts || coalesce(array_agg(m.read_ct order by m.msg_id), '{}'),
           v_vts || coalesce(array_agg(m.vt order by m.msg_id), '{}'),
           v_messages || coalesce(array_agg(m.message order by m.msg_id), '{}'),
           v_msg_queues || coalesce(array_agg(v_queue order by m.msg_id), '{}')
    into v_msg_ids, v_read_cts, v_vts, v_messages, v_msg_queues
    from pgmq.read(v_queue, v_stage.visibility_timeout, v_qty - cardinality(v_msg_ids)) m;
  end loop;
  -- guard: nothing to claim
  if cardinality(v_msg_ids) = 0 then
    return;
  end if;

  -- the runs of the batch are locked first, but never waited for. pgmq.read has locked the
  -- messages; whoever holds a run's lock may want one of them: a batch answer (wf.complete_batch
  -- locks its runs, then archives their messages) of a lost attempt whose message came back.
  -- guard: lock order (messages, then runs, here; runs, then messages, in an answer): a run
  -- locked by someone else has its messages given back, visible at once, for the next claim
  select coalesce(array_agg(l.run_text), '{}'::text[]) into v_busy
  from (select distinct m ->> 'run_id' as run_text from unnest(v_messages) m
        where coalesce(m ->> 'run_id', '') ~ '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
        order by 1) l
  where not pg_try_advisory_xact_lock(7001, hashtext(l.run_text::uuid::text));
  if cardinality(v_busy) > 0 then
    perform pgmq.set_vt(u.queue, u.msg_id, 0)
    from unnest(v_msg_ids, v_messages, v_msg_queues) as u(msg_id, message, queue)
    where u.message ->> 'run_id' = any (v_busy);
    perform pg_notify('wf', q.queue)
    from (select distinct u.queue from unnest(v_messages, v_msg_queues) as u(message, queue)
          where u.message ->> 'run_id' = any (v_busy)) q;
    select coalesce(array_agg(u.msg_id order by u.ord), '{}'), coalesce(array_agg(u.read_ct order by u.ord), '{}'),
           coalesce(array_agg(u.vt order by u.ord), '{}'), coalesce(array_agg(u.message order by u.ord), '{}'),
           coalesce(array_agg(u.queue order by u.ord), '{}')
    into v_msg_ids, v_read_cts, v_vts, v_messages, v_msg_queues
    from unnest(v_msg_ids, v_read_cts, v_vts, v_messages, v_msg_queues)
           with ordinality as u(msg_id, read_ct, vt, message, queue, ord)
    where coalesce(u.message ->> 'run_id', '') <> all (v_busy);
    -- guard: every message's run was busy
    if cardinality(v_msg_ids) = 0 then
      return;
    end if;
  end if;

  -- the common case, set-based: the step waits for this very message, its run is open,
  -- and attempts are left
  with m as materialized (
    select u.msg_id, u.vt, u.ord, (u.message ->> 'run_id')::uuid as run_id, u.message ->> 'step' as step
    from unnest(v_msg_ids, v_vts, v_messages) with ordinality as u(msg_id, vt, message, ord)
    where coalesce(u.message ->> 'run_id', '') ~ '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
      and jsonb_typeof(u.message -> 'step') = 'string'
  ), ready as (
    select m.msg_id, m.vt, m.ord, s.run_id, s.name, r.status as run_status
    from m
    join wf.steps s on s.run_id = m.run_id and s.name = m.step
    -- the run by its key: as a plain join, a generic plan made while wf.runs had no statistics
    -- reached the run through an index on workflow (from the definition row), reading every run
    -- of the workflow for each message
    cross join lateral (select r.status, r.workflow, r.version from wf.runs r where r.id = s.run_id limit 1) r
    join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = coalesce(s.map_step, s.name)
    where s.msg_id = m.msg_id and s.status in ('queued', 'retrying')
      and r.status in ('scheduled', 'pending', 'running')
      and s.attempt - s.attempt_base < d.max_attempts
      and d.kind <> 'wait_for'
  ), started as (
    update wf.steps s
    set status = 'running', attempt = s.attempt + 1, started_at = clock_timestamp(), lease_until = ready.vt,
        stuck_at = null
    from ready
    where s.run_id = ready.run_id and s.name = ready.name
    returning s.run_id, s.name, s.attempt, ready.ord
  ), events as (
    insert into wf.events (run_id, step, attempt, kind, detail)
    select started.run_id, started.name, started.attempt, 'started', null from started
  ), runs as (
    update wf.runs r set status = 'running', started_at = clock_timestamp()
    from (select distinct ready.run_id from ready where ready.run_status in ('scheduled', 'pending')) w
    where r.id = w.run_id and r.status in ('scheduled', 'pending')
  )
  select coalesce(array_agg(started.ord), '{}') into v_started from started;

  -- the rare cases, one by one, in run order
  if cardinality(v_started) < cardinality(v_msg_ids) then
    for v_msg in
      select u.msg_id, u.read_ct, u.vt, u.message, u.queue, u.ord
      from unnest(v_msg_ids, v_read_cts, v_vts, v_messages, v_msg_queues)
             with ordinality as u(msg_id, read_ct, vt, message, queue, ord)
      where u.ord <> all (v_started)
      order by u.message ->> 'run_id', u.msg_id
    loop
      -- guard: a message wf did not write
      if coalesce(v_msg.message ->> 'run_id', '') !~ '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
         or jsonb_typeof(v_msg.message -> 'step') is distinct from 'string' then
        perform pgmq.archive(v_msg.queue, v_msg.msg_id);
        perform pgmq.send('wf_dlq', jsonb_build_object('queue', v_msg.queue, 'msg_id', v_msg.msg_id,
          'error', 'malformed message', 'message', v_msg.message), 0);
        continue;
      end if;
      v_run_id := (v_msg.message ->> 'run_id')::uuid;

      -- a child run became final: its parent step takes its output or its failure
      if v_msg.message ? 'child' then
        perform pgmq.archive(v_msg.queue, v_msg.msg_id);
        if coalesce(v_msg.message ->> 'child', '') ~ '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' then
          perform wf.finish_child(v_run_id, v_msg.message ->> 'step', (v_msg.message ->> 'child')::uuid);
        end if;
        continue;
      end if;

      select s.name, s.status, s.attempt, s.attempt_base, s.msg_id, r.status as run_status, d.max_attempts, d.kind
      into v_row
      from wf.steps s
      join wf.runs r on r.id = s.run_id
      join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = coalesce(s.map_step, s.name)
      where s.run_id = v_run_id and s.name = v_msg.message ->> 'step';

      -- guard: the run is gone (retention), or this is not the step's message, or the step no longer waits
      if not found or v_row.msg_id is distinct from v_msg.msg_id
         or v_row.status not in ('queued', 'retrying', 'running') then
        perform pgmq.archive(v_msg.queue, v_msg.msg_id);
        continue;
      end if;

      -- guard: the run ended (a sibling died, or it was cancelled) while this step's attempt
      -- was out; its lost attempt is not repeated for a run that is over
      if v_row.run_status in ('completed', 'failed', 'cancelled', 'compensation_failed') then
        perform pgmq.archive(v_msg.queue, v_msg.msg_id);
        update wf.steps s set status = 'cancelled', finished_at = clock_timestamp(), lease_until = null
        where s.run_id = v_run_id and s.name = v_row.name;
        insert into wf.events (run_id, step, attempt, kind, detail)
        values (v_run_id, v_row.name, v_row.attempt, 'cancelled',
                jsonb_build_object('was', v_row.status, 'reason', format('run is %s', v_row.run_status)));
        continue;
      end if;

      -- guard: the run was paused after this message was sent (wf.pause unqueues the rest):
      -- the step waits with its run, its attempt unused
      if v_row.run_status = 'paused' and v_row.status in ('queued', 'retrying') then
        perform wf.unqueue_steps(v_run_id);
        continue;
      end if;

      -- a wait_for step starts waiting, or its timer fired: no worker slot, nothing returned
      if v_row.kind = 'wait_for' then
        if v_row.status = 'running' then
          perform wf.wait_timed_out(v_run_id, v_row.name, v_row.attempt);
        else
          perform wf.start_wait(v_run_id, v_row.name, v_msg.queue, v_msg.msg_id);
        end if;
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
      v_started := v_started || v_msg.ord;
    end loop;
  end if;

  if v_limited and cardinality(v_started) > 0 then
    perform wf.hold_stage_room(claim.stage, array_agg(s.run_id), array_agg(s.name), array_agg(s.attempt))
    from unnest(v_msg_ids, v_messages) with ordinality as u(msg_id, message, ord)
    join wf.steps s on s.run_id = (u.message ->> 'run_id')::uuid and s.name = u.message ->> 'step'
    where u.ord = any (v_started);
  end if;

  -- what each started attempt needs, read after the updates so the context shows them
  return query
  select s.run_id, s.name, s.attempt, claim.stage, d.action, d.payload_template, d.when_template,
         jsonb_build_object(
           'input', r.input,
           'steps', (select jsonb_object_agg(o.name, jsonb_build_object('status', o.status, 'output', o.output,
                                                                         'error', o.error))
                     from wf.steps o where o.run_id = s.run_id and o.map_step is null),
           'run', jsonb_build_object('id', s.run_id, 'workflow', r.workflow, 'version', r.version,
                                     'correlation_id', r.correlation_id, 'attempt', s.attempt),
           -- an item of a map step: the item and its index (null otherwise)
           'item', s.item_value, 'item_index', s.item),
         d.timeout_seconds, r.workflow, r.correlation_id, u.msg_id, u.vt, d.kind, d.not_before, d.offset_seconds,
         s.item, d.for_each
  from unnest(v_msg_ids, v_vts, v_messages) with ordinality as u(msg_id, vt, message, ord)
  join wf.steps s on s.run_id = (u.message ->> 'run_id')::uuid and s.name = u.message ->> 'step'
  join wf.runs r on r.id = s.run_id
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = coalesce(s.map_step, s.name)
  where u.ord = any (v_started)
  order by u.ord;  -- bands in priority order, each in message order
end;
$$;

revoke all on function wf.claim(text, int) from public;
grant execute on function wf.claim(text, int) to wf_worker, wf_admin;
