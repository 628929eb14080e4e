-- wf 0004: the consumer side — claim, complete, fail, extend, skip.
--
-- Each answer names the attempt it is about. Only the step's current running
-- attempt may change it: any other answer is a late one from a lost attempt,
-- recorded as a `stale_answer` event and otherwise ignored.

-- wf.kill_step: a step failed for good under on_failure abort — it goes to the
-- dead-letter queue, the run fails, and the steps not yet started are cancelled
create function wf.kill_step(p_run_id uuid, p_step text, p_attempt int, p_error text, p_http_status int)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_step record;
  v_dlq_msg_id bigint;
begin
  select s.msg_id, s.status, st.queue, r.workflow, r.version, r.correlation_id, s.function into v_step
  from wf.steps s join wf.stages st on st.name = s.function join wf.runs r on r.id = s.run_id
  where s.run_id = p_run_id and s.name = p_step;

  if v_step.msg_id is not null then
    perform pgmq.archive(v_step.queue, v_step.msg_id);
  end if;
  select pgmq.send('wf_dlq', jsonb_build_object(
    'run_id', p_run_id, 'workflow', v_step.workflow, 'version', v_step.version, 'step', p_step,
    'function', v_step.function, 'attempt', p_attempt, 'error', p_error, 'http_status', p_http_status,
    'correlation_id', v_step.correlation_id, 'failed_at', clock_timestamp()), 0)
  into v_dlq_msg_id;
  perform pg_notify('wf', 'wf_dlq');

  update wf.steps s
  set status = 'dead', dlq_msg_id = v_dlq_msg_id, finished_at = clock_timestamp(), lease_until = null,
      error = p_error, http_status = p_http_status
  where s.run_id = p_run_id and s.name = p_step;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (p_run_id, p_step, p_attempt, 'dead', jsonb_strip_nulls(jsonb_build_object('error', p_error, 'http_status', p_http_status, 'dlq_msg_id', v_dlq_msg_id)));

  update wf.runs r
  set status = 'failed', finished_at = clock_timestamp(), error = p_error, failed_step = p_step
  where r.id = p_run_id and r.status not in ('completed', 'failed', 'cancelled');
  if found then
    perform wf.cancel_open_steps(p_run_id, false, format('step %s is dead', p_step));
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (p_run_id, p_step, p_attempt, 'run_failed', jsonb_build_object('error', p_error));
  end if;
end;
$$;

-- wf.claim: read up to qty messages of a stage and start an attempt for each;
-- returns what the call needs (the consumer renders payload_template and
-- when_template over context, then POSTs to the function)
create function wf.claim(stage text, qty int default 1)
returns table (
  run_id uuid, step text, attempt int, function text, action text, payload_template jsonb,
  when_template text, context jsonb, timeout_seconds int, workflow text, correlation_id text,
  msg_id bigint, visible_until timestamptz)
language plpgsql
set search_path = ''
as $$
declare
  v_stage record;
  v_msg record;
  v_row record;
  v_run_id uuid;
  v_now timestamptz;
begin
  if qty is null or qty not between 1 and 1000 then
    perform wf.raise_input_error(format('qty must be between 1 and 1000, got %s', coalesce(qty::text, 'null')));
  end if;
  select st.name, st.queue, st.visibility_timeout into v_stage from wf.stages st where st.name = claim.stage;
  if not found then
    raise exception 'unknown stage % (stages are created by wf.define)', coalesce(stage, 'null') using errcode = 'P0002';
  end if;

  -- run order keeps the run locks of one claim in a fixed order, so two claims never deadlock
  for v_msg in
    select m.msg_id, m.read_ct, m.vt, m.message
    from pgmq.read(v_stage.queue, v_stage.visibility_timeout, qty) m
    order by m.message ->> 'run_id', m.msg_id
  loop
    -- guard: a message wf did not write
    if coalesce(v_msg.message ->> 'run_id', '') !~ '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$'
       or jsonb_typeof(v_msg.message -> 'step') is distinct from 'string' then
      perform pgmq.archive(v_stage.queue, v_msg.msg_id);
      perform pgmq.send('wf_dlq', jsonb_build_object('queue', v_stage.queue, 'msg_id', v_msg.msg_id,
        'error', 'malformed message', 'message', v_msg.message), 0);
      continue;
    end if;
    v_run_id := (v_msg.message ->> 'run_id')::uuid;
    perform pg_advisory_xact_lock(7001, hashtext(v_run_id::text));

    select s.name, s.status, s.attempt, s.attempt_base, s.msg_id, r.status as run_status, r.input,
           r.workflow, r.version, r.correlation_id, d.action, d.payload_template, d.when_template,
           d.timeout_seconds, d.max_attempts
    into v_row
    from wf.steps s
    join wf.runs r on r.id = s.run_id
    join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
    where s.run_id = v_run_id and s.name = v_msg.message ->> 'step';

    -- guard: the run is gone (retention), or this is not the step's message, or the step no longer waits
    if not found or v_row.msg_id is distinct from v_msg.msg_id
       or v_row.status not in ('queued', 'retrying', 'running') then
      perform pgmq.archive(v_stage.queue, v_msg.msg_id);
      continue;
    end if;

    -- guard: the run ended (a sibling died, or it was cancelled) while this step's attempt
    -- was out; its lost attempt is not repeated for a run that is over
    if v_row.run_status in ('completed', 'failed', 'cancelled') then
      perform pgmq.archive(v_stage.queue, v_msg.msg_id);
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

    v_now := clock_timestamp();
    update wf.steps s
    set status = 'running', attempt = s.attempt + 1, started_at = v_now, lease_until = v_msg.vt, stuck_at = null
    where s.run_id = v_run_id and s.name = v_row.name;
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (v_run_id, v_row.name, v_row.attempt + 1, 'started', null);
    if v_row.run_status in ('scheduled', 'pending') then
      update wf.runs r set status = 'running', started_at = v_now where r.id = v_run_id;
    end if;

    run_id := v_run_id;
    step := v_row.name;
    attempt := v_row.attempt + 1;
    function := v_stage.name;
    action := v_row.action;
    payload_template := v_row.payload_template;
    when_template := v_row.when_template;
    timeout_seconds := v_row.timeout_seconds;
    workflow := v_row.workflow;
    correlation_id := v_row.correlation_id;
    msg_id := v_msg.msg_id;
    visible_until := v_msg.vt;
    context := jsonb_build_object(
      'input', v_row.input,
      'steps', (select jsonb_object_agg(s.name, jsonb_build_object('status', s.status, 'output', s.output, 'error', s.error))
                from wf.steps s where s.run_id = v_run_id),
      'run', jsonb_build_object('id', v_run_id, 'workflow', v_row.workflow, 'version', v_row.version,
                                'correlation_id', v_row.correlation_id, 'attempt', v_row.attempt + 1));
    return next;
  end loop;
end;
$$;

-- wf.current_attempt: lock the run and return the step if p_attempt is its
-- running attempt; otherwise record the late answer and return nothing
create function wf.current_attempt(p_run_id uuid, p_step text, p_attempt int, p_answer text)
returns table (status text, msg_id bigint, queue text, run_status text, attempt_base int,
               max_attempts int, on_failure text, backoff jsonb, started_at timestamptz)
language plpgsql
set search_path = ''
as $$
declare
  v_row record;
begin
  if p_run_id is null or p_step is null or p_attempt is null then
    perform wf.raise_input_error(format('%s needs run_id, step and attempt (got %s, %s, %s)', p_answer,
      coalesce(p_run_id::text, 'null'), coalesce(p_step, 'null'), coalesce(p_attempt::text, 'null')));
  end if;
  perform pg_advisory_xact_lock(7001, hashtext(p_run_id::text));
  select s.status, s.attempt, s.msg_id, st.queue, r.status as run_status, s.attempt_base,
         d.max_attempts, d.on_failure, d.backoff, s.started_at
  into v_row
  from wf.steps s
  join wf.runs r on r.id = s.run_id
  join wf.stages st on st.name = s.function
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
  where s.run_id = p_run_id and s.name = p_step;
  if not found then
    raise exception 'unknown step % of run %', p_step, p_run_id using errcode = 'P0002';
  end if;

  -- guard: late answer from a lost attempt, or for a step that was cancelled meanwhile
  if v_row.status <> 'running' or v_row.attempt <> p_attempt then
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (p_run_id, p_step, p_attempt, 'stale_answer', jsonb_build_object('answer', p_answer, 'step_status', v_row.status, 'current_attempt', v_row.attempt));
    return;
  end if;
  status := v_row.status;
  msg_id := v_row.msg_id;
  queue := v_row.queue;
  run_status := v_row.run_status;
  attempt_base := v_row.attempt_base;
  max_attempts := v_row.max_attempts;
  on_failure := v_row.on_failure;
  backoff := v_row.backoff;
  started_at := v_row.started_at;
  return next;
end;
$$;

-- wf.finish_step: close a step's running attempt (succeeded, failed or skipped),
-- archive its message (unless p_msg_id is null: the caller archives a batch at once),
-- and move the run on
create function wf.finish_step(p_run_id uuid, p_step text, p_attempt int, p_status text, p_queue text,
                               p_msg_id bigint, p_run_status text, p_output jsonb, p_error text,
                               p_http_status int, p_detail jsonb)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_open boolean := p_run_status in ('scheduled', 'pending', 'running');
  v_queued jsonb;
begin
  if p_msg_id is not null then
    perform pgmq.archive(p_queue, p_msg_id);
  end if;
  update wf.steps s
  set status = p_status, output = p_output, error = p_error, http_status = p_http_status,
      finished_at = clock_timestamp(), lease_until = null
  where s.run_id = p_run_id and s.name = p_step;
  if v_open then
    v_queued := wf.advance(p_run_id);
  end if;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (p_run_id, p_step, p_attempt, p_status,
          case when v_queued <> '{}' then coalesce(p_detail, '{}') || jsonb_build_object('queued', v_queued)
               else p_detail end);
  -- a run that just queued a step is not done
  if v_open and v_queued = '{}' then
    perform wf.close_if_done(p_run_id);
  end if;
end;
$$;

-- wf.fail: report a failed call; retried with backoff while attempts remain and
-- the error is retryable, otherwise the step's on_failure decides
create function wf.fail(
  run_id uuid,
  step text,
  attempt int,
  error text,
  retryable boolean default true,
  http_status int default null,
  retry_after_seconds int default null)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_cur record;
  v_error text := left(coalesce(error, 'unknown error'), 4000);
  v_delay int;
  v_detail jsonb;
begin
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'fail');
  if not found then
    return false;
  end if;
  v_detail := jsonb_strip_nulls(jsonb_build_object('error', v_error, 'http_status', http_status,
    'duration_ms', round(extract(epoch from clock_timestamp() - v_cur.started_at) * 1000)));

  if coalesce(retryable, true) and attempt - v_cur.attempt_base < v_cur.max_attempts then
    v_delay := greatest(wf.backoff_delay(v_cur.backoff, attempt - v_cur.attempt_base),
                        least(greatest(coalesce(retry_after_seconds, 0), 0), 86400));
    perform pgmq.set_vt(v_cur.queue, v_cur.msg_id, v_delay);
    update wf.steps s
    set status = 'retrying', error = v_error, http_status = fail.http_status, lease_until = null,
        queued_at = clock_timestamp() + make_interval(secs => v_delay)
    where s.run_id = fail.run_id and s.name = fail.step;
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (run_id, step, attempt, 'retrying', v_detail || jsonb_strip_nulls(jsonb_build_object('delay_seconds', v_delay, 'retry_after_seconds', retry_after_seconds)));
    return true;
  end if;

  if v_cur.on_failure = 'continue' then
    perform wf.finish_step(run_id, step, attempt, 'failed', v_cur.queue, v_cur.msg_id, v_cur.run_status,
                           null, v_error, http_status, v_detail);
  else
    perform wf.kill_step(run_id, step, attempt, v_error, http_status);
  end if;
  return true;
end;
$$;

-- wf.complete_batch: wf.complete for many answers in one transaction (the worker's group
-- commit). Each answer is fenced on its own attempt exactly as wf.complete does; runs are
-- taken in id order, like claims, so run locks are always acquired in one order; the
-- messages are archived once per queue at the end (pgmq.archive with an array) instead
-- of once per answer. Returns how many answers changed a step.
create function wf.complete_batch(run_ids uuid[], steps text[], attempts int[], outputs jsonb[])
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_item record;
  v_cur record;
  v_size int;
  v_max_bytes int := (select s.value::int from wf.settings s where s.key = 'max_output_bytes');
  v_queues text[] := '{}'::text[];
  v_msg_ids bigint[] := '{}'::bigint[];
  v_archive record;
  v_done int := 0;
begin
  -- guard: one value of each per answer
  if cardinality(run_ids) is distinct from cardinality(steps) or cardinality(run_ids) is distinct from cardinality(attempts)
     or cardinality(run_ids) is distinct from cardinality(outputs) then
    perform wf.raise_input_error('complete_batch needs as many steps, attempts and outputs as run_ids');
  end if;

  for v_item in
    select u.run_id, u.step, u.attempt, u.output
    from unnest(run_ids, steps, attempts, outputs) as u(run_id, step, attempt, output)
    order by u.run_id
  loop
    select * into v_cur from wf.current_attempt(v_item.run_id, v_item.step, v_item.attempt, 'complete');
    continue when not found;
    v_done := v_done + 1;
    -- guard: an output too large to store fails the step, as in wf.complete
    v_size := octet_length(v_item.output::text);
    if v_size > v_max_bytes then
      perform wf.fail(v_item.run_id, v_item.step, v_item.attempt,
                      format('output is %s bytes, more than the %s stored', v_size, v_max_bytes), false);
      continue;
    end if;
    perform wf.finish_step(v_item.run_id, v_item.step, v_item.attempt, 'succeeded', v_cur.queue, null,
      v_cur.run_status, v_item.output, null, null,
      jsonb_build_object('duration_ms', round(extract(epoch from clock_timestamp() - v_cur.started_at) * 1000)));
    v_queues := v_queues || v_cur.queue;
    v_msg_ids := v_msg_ids || v_cur.msg_id;
  end loop;

  for v_archive in
    select a.queue, array_agg(a.msg_id) as msg_ids
    from unnest(v_queues, v_msg_ids) as a(queue, msg_id)
    group by a.queue
  loop
    perform pgmq.archive(v_archive.queue, v_archive.msg_ids);
  end loop;
  return v_done;
end;
$$;

-- wf.complete: report a successful call; output becomes steps.<step>.output
-- (one answer through wf.complete_batch, so both paths are the same code)
create function wf.complete(run_id uuid, step text, attempt int, output jsonb)
returns boolean
language sql
set search_path = ''
as $$
  select wf.complete_batch(array[run_id], array[step], array[attempt], array[output]) = 1
$$;

-- wf.skip: the step's `when` rendered false (or the consumer decided not to call)
create function wf.skip(run_id uuid, step text, attempt int, reason text default null)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_cur record;
begin
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'skip');
  if not found then
    return false;
  end if;
  perform wf.finish_step(run_id, step, attempt, 'skipped', v_cur.queue, v_cur.msg_id, v_cur.run_status,
    null, null, null, jsonb_strip_nulls(jsonb_build_object('reason', left(reason, 4000))));
  return true;
end;
$$;

-- wf.extend: heartbeat — keep the running attempt's message invisible for `seconds` more
create function wf.extend(run_id uuid, step text, attempt int, seconds int)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_cur record;
begin
  if seconds is null or seconds not between 1 and 43200 then
    perform wf.raise_input_error(format('step %s of run %s: seconds must be between 1 and 43200, got %s',
      step, run_id, coalesce(seconds::text, 'null')));
  end if;
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'extend');
  if not found then
    return false;
  end if;
  perform pgmq.set_vt(v_cur.queue, v_cur.msg_id, seconds);
  update wf.steps s set lease_until = clock_timestamp() + make_interval(secs => seconds)
  where s.run_id = extend.run_id and s.name = extend.step;
  return true;
end;
$$;
