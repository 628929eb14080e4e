-- wf 0003: runs — enqueue, advance, cancel, retry.
--
-- Every transition of a run first takes the run's transaction-level advisory lock,
-- pg_advisory_xact_lock(7001, hashtext(run_id::text)) — 7001 is wf's lock class.
-- It is cheaper than a row lock (no WAL) and makes fan-in safe: two parallel steps
-- finishing at once would otherwise each see the other one still running, and
-- neither would queue the step that waits for both. Hot-path statements are
-- written inline rather than through tiny helper functions: each call of a
-- function with `set search_path` costs a configuration save and restore.

-- wf.backoff_delay: seconds to wait before retry number n (1-based)
create function wf.backoff_delay(backoff jsonb, n int)
returns int
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_delay numeric;
begin
  if backoff ? 'delays' then
    return (backoff -> 'delays' ->> (least(n, jsonb_array_length(backoff -> 'delays')) - 1))::numeric::int;
  end if;
  v_delay := least((backoff ->> 'base_seconds')::numeric * power((backoff ->> 'factor')::numeric, greatest(n - 1, 0)),
                   (backoff ->> 'max_seconds')::numeric);
  if (backoff ->> 'jitter')::boolean then
    -- equal jitter: between half and all of the delay, so retries of many runs spread out
    v_delay := v_delay * (0.5 + random() * 0.5);
  end if;
  return ceil(v_delay)::int;
end;
$$;

-- wf.advance: queue every waiting step whose dependencies are final. Returns what it
-- queued ({"step": delay_seconds, ...}); the caller records that in the event that caused
-- it, so a run's history shows every step being queued without a row of its own.
-- Callers hold the run lock.
create function wf.advance(p_run_id uuid)
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
    select s.name, st.queue, d.delay_seconds, r.run_at
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
    -- every send wakes the stage's consumers (DESIGN §6), a delayed one too: cheap, and
    -- a consumer that finds nothing visible yet goes back to its poll
    perform pg_notify('wf', v_step.queue);
    update wf.steps s
    set status = 'queued', msg_id = v_msg_id, queued_at = clock_timestamp() + make_interval(secs => v_delay)
    where s.run_id = p_run_id and s.name = v_step.name;
    v_queued := v_queued || jsonb_build_object(v_step.name, v_delay);
  end loop;
  return v_queued;
end;
$$;

-- wf.close_if_done: the run completes when no step is left to do. Callers hold the run lock.
create function wf.close_if_done(p_run_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from wf.steps s
                 where s.run_id = p_run_id
                   and s.status not in ('succeeded', 'failed', 'skipped', 'dead', 'cancelled')) then
    update wf.runs r set status = 'completed', finished_at = clock_timestamp()
    where r.id = p_run_id and r.status in ('scheduled', 'pending', 'running');
    if found then
      insert into wf.events (run_id, step, attempt, kind, detail)
      values (p_run_id, null, null, 'run_completed', null);
    end if;
  end if;
end;
$$;

-- wf.enqueue: start a run of the workflow's current version
create function wf.enqueue(
  workflow text,
  input jsonb default '{}',
  idempotency_key text default null,
  run_at timestamptz default null,
  correlation_id text default null)
returns uuid
language plpgsql
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_workflow record;
  v_missing text[];
  v_run_id uuid;
  v_existing record;
  v_size int;
  v_max_bytes int := (select s.value::int from wf.settings s where s.key = 'max_input_bytes');
begin
  -- guard: arguments
  if workflow is null then
    perform wf.raise_input_error('workflow must not be null');
  end if;
  if input is null or jsonb_typeof(input) <> 'object' then
    perform wf.raise_input_error(format('workflow %s: input must be a JSON object, got %s',
      workflow, coalesce(jsonb_typeof(input), 'null')));
  end if;
  v_size := octet_length(input::text);
  if v_size > v_max_bytes then
    raise exception 'workflow %: input is % bytes, more than the % allowed', workflow, v_size, v_max_bytes
      using errcode = '54000';
  end if;
  if length(idempotency_key) not between 1 and 512 then
    perform wf.raise_input_error(format('workflow %s: idempotency_key must be 1 to 512 characters', workflow));
  end if;
  if length(correlation_id) not between 1 and 512 then
    perform wf.raise_input_error(format('workflow %s: correlation_id must be 1 to 512 characters', workflow));
  end if;
  -- guard: the first messages are sent with a delay of whole seconds (int), so run_at stays finite and near
  if not isfinite(run_at) or run_at > clock_timestamp() + interval '10 years' then
    perform wf.raise_input_error(format('workflow %s: run_at must be a time at most 10 years ahead, got %s',
      workflow, run_at));
  end if;

  -- guard: a known, active workflow
  select w.name, w.current_version, w.active, d.input_vars, d.definition -> 'required_fields' as required
  into v_workflow
  from wf.workflows w join wf.definitions d on d.workflow = w.name and d.version = w.current_version
  where w.name = enqueue.workflow;
  if not found then
    raise exception 'unknown workflow %', workflow using errcode = 'P0002';
  end if;
  if not v_workflow.active then
    raise exception 'workflow % is inactive (wf.activate(%L) turns it on)', workflow, workflow using errcode = '55000';
  end if;

  -- guard: required fields, then every input variable the templates use
  select array_agg(f order by f) into v_missing
  from jsonb_array_elements_text(coalesce(v_workflow.required, '[]')) f
  where not input ? f;
  if v_missing is not null then
    perform wf.raise_input_error(format('workflow %s: input is missing required field(s) %s',
      workflow, array_to_string(v_missing, ', ')));
  end if;
  select array_agg(v order by v) into v_missing from unnest(v_workflow.input_vars) v where not input ? v;
  if v_missing is not null then
    perform wf.raise_input_error(format('workflow %s: input is missing variable(s) %s used by its templates',
      workflow, array_to_string(v_missing, ', ')));
  end if;

  v_run_id := wf.uuid7();
  insert into wf.runs (id, workflow, version, status, input, idempotency_key, correlation_id, run_at)
  values (v_run_id, v_workflow.name, v_workflow.current_version,
          case when run_at > clock_timestamp() then 'scheduled' else 'pending' end,
          input, idempotency_key, correlation_id, run_at)
  on conflict (workflow, idempotency_key) where idempotency_key is not null do nothing;

  -- guard: the same idempotency key returns the run it started, if the input is the same
  if not found then
    select r.id, r.input into v_existing
    from wf.runs r where r.workflow = enqueue.workflow and r.idempotency_key = enqueue.idempotency_key;
    if v_existing.input is distinct from input then
      perform wf.raise_input_error(format('workflow %s: idempotency_key %s was used by run %s with a different input',
        workflow, idempotency_key, v_existing.id));
    end if;
    return v_existing.id;
  end if;

  perform pg_advisory_xact_lock(7001, hashtext(v_run_id::text));
  insert into wf.steps (run_id, name, function, status)
  select v_run_id, d.name, d.function, 'waiting'
  from wf.definition_steps d
  where d.workflow = v_workflow.name and d.version = v_workflow.current_version;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (v_run_id, null, null, 'run_created',
          jsonb_strip_nulls(jsonb_build_object('version', v_workflow.current_version, 'run_at', run_at,
                                               'idempotency_key', idempotency_key, 'queued', wf.advance(v_run_id))));
  return v_run_id;
end;
$$;

-- wf.cancel_open_steps: cancel every step of a run that has not finished
-- (running ones too when p_running); their messages leave the queues
create function wf.cancel_open_steps(p_run_id uuid, p_running boolean, p_reason text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_step record;
  v_count int := 0;
begin
  for v_step in
    select s.name, s.attempt, s.status, s.msg_id, st.queue
    from wf.steps s join wf.stages st on st.name = s.function
    where s.run_id = p_run_id
      and (s.status in ('waiting', 'queued', 'retrying') or (p_running and s.status = 'running'))
  loop
    if v_step.msg_id is not null and v_step.status <> 'waiting' then
      perform pgmq.archive(v_step.queue, v_step.msg_id);
    end if;
    update wf.steps s set status = 'cancelled', finished_at = clock_timestamp(), lease_until = null
    where s.run_id = p_run_id and s.name = v_step.name;
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (p_run_id, v_step.name, v_step.attempt, 'cancelled', jsonb_build_object('was', v_step.status, 'reason', p_reason));
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

-- wf.cancel: stop a run; answers still in flight become no-ops
create function wf.cancel(run_id uuid, reason text default null)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_status text;
begin
  if run_id is null then
    perform wf.raise_input_error('run_id must not be null');
  end if;
  perform pg_advisory_xact_lock(7001, hashtext(run_id::text));
  select r.status into v_status from wf.runs r where r.id = cancel.run_id;
  if not found then
    raise exception 'unknown run %', run_id using errcode = 'P0002';
  end if;
  if v_status in ('completed', 'failed', 'cancelled') then
    return false;
  end if;
  perform wf.cancel_open_steps(run_id, true, coalesce(reason, 'run cancelled'));
  update wf.runs r set status = 'cancelled', finished_at = clock_timestamp(), error = left(reason, 4000)
  where r.id = cancel.run_id;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (run_id, null, null, 'run_cancelled', jsonb_build_object('reason', reason));
  return true;
end;
$$;

-- wf.retry: resume a failed run at its dead and failed steps with fresh attempts;
-- succeeded steps are not repeated and stale answers stay fenced (attempt numbers go on)
create function wf.retry(run_id uuid)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  v_status text;
  v_step record;
  v_msg_id bigint;
  v_queued jsonb := '{}'::jsonb;
begin
  if run_id is null then
    perform wf.raise_input_error('run_id must not be null');
  end if;
  perform pg_advisory_xact_lock(7001, hashtext(run_id::text));
  select r.status into v_status from wf.runs r where r.id = retry.run_id;
  if not found then
    raise exception 'unknown run %', run_id using errcode = 'P0002';
  end if;
  if v_status <> 'failed' then
    return false;
  end if;

  for v_step in
    select s.name, s.attempt, s.dlq_msg_id, st.queue
    from wf.steps s join wf.stages st on st.name = s.function
    where s.run_id = retry.run_id and s.status in ('dead', 'failed')
  loop
    if v_step.dlq_msg_id is not null then
      perform pgmq.archive('wf_dlq', v_step.dlq_msg_id);
    end if;
    select pgmq.send(v_step.queue, jsonb_build_object('run_id', run_id, 'step', v_step.name), 0) into v_msg_id;
    perform pg_notify('wf', v_step.queue);
    update wf.steps s
    set status = 'queued', msg_id = v_msg_id, dlq_msg_id = null, attempt_base = s.attempt,
        queued_at = clock_timestamp(), finished_at = null, error = null, http_status = null
    where s.run_id = retry.run_id and s.name = v_step.name;
    v_queued := v_queued || jsonb_build_object(v_step.name, 0);
  end loop;
  -- steps cancelled by the failure wait again, with a fresh budget too
  update wf.steps s set status = 'waiting', finished_at = null, attempt_base = s.attempt
  where s.run_id = retry.run_id and s.status = 'cancelled';

  update wf.runs r set status = 'running', finished_at = null, error = null, failed_step = null
  where r.id = retry.run_id;
  v_queued := v_queued || wf.advance(run_id);
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (run_id, null, null, 'run_retried', jsonb_build_object('queued', v_queued));
  return true;
end;
$$;
