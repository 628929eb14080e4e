-- wf.enqueue: start a run of the workflow's current version. Its priority (−100 … 100) puts its
-- steps in their stages' high or low band (wf.ensure_band), claimed before / after the rest. With `debounce`, a run with the
-- same key that has not started yet takes the new input instead (wf.debounce_run); with
-- `concurrency`, a run whose key has reached its limit waits (held) until wf.release_key.
create or replace function wf.enqueue(
  workflow text,
  input jsonb default '{}',
  idempotency_key text default null,
  run_at timestamptz default null,
  correlation_id text default null,
  priority int default 0)
returns uuid
language plpgsql
security definer
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
  v_schema_error text;
  v_debounce_key text;
  v_concurrency_key text;
  v_start timestamptz;
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
  if priority is null or priority not between -100 and 100 then
    perform wf.raise_input_error(format('workflow %s: priority must be between -100 and 100, got %s',
      workflow, coalesce(priority::text, 'null')));
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
  select w.name, w.current_version, w.active, d.input_vars, d.definition -> 'required_fields' as required,
         d.definition -> 'input_schema' as input_schema, d.definition -> 'concurrency' as concurrency,
         d.definition -> 'debounce' as debounce
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
  -- guard: the input conforms to the definition's input_schema (the message names the JSON path)
  if v_workflow.input_schema is not null then
    v_schema_error := wf.schema_error(v_workflow.input_schema, input, 'input');
    if v_schema_error is not null then
      perform wf.raise_input_error(format('workflow %s: %s', workflow, v_schema_error));
    end if;
  end if;
  select array_agg(v order by v) into v_missing from unnest(v_workflow.input_vars) v where not input ? v;
  if v_missing is not null then
    perform wf.raise_input_error(format('workflow %s: input is missing variable(s) %s used by its templates',
      workflow, array_to_string(v_missing, ', ')));
  end if;

  -- debounce: a run with the same key that has not started yet takes this input and starts
  -- later; an idempotency key that found its run wins (that run is returned below, unchanged)
  if v_workflow.debounce is not null
     and (idempotency_key is null
          or not exists (select 1 from wf.runs r where r.workflow = enqueue.workflow and r.idempotency_key = enqueue.idempotency_key)) then
    v_debounce_key := coalesce((input #> string_to_array(v_workflow.debounce ->> 'key', '.'))::text, 'null');
    v_start := greatest(coalesce(run_at, clock_timestamp()),
                        clock_timestamp() + make_interval(secs => (v_workflow.debounce ->> 'seconds')::int));
    perform pg_advisory_xact_lock(7003, hashtext(workflow || '/' || v_debounce_key));
    select r.id into v_run_id from wf.runs r
    where r.workflow = enqueue.workflow and r.debounce_key = v_debounce_key and r.status = 'scheduled'
    order by r.created_at desc limit 1;
    if found then
      return wf.debounce_run(v_run_id, input, v_start);
    end if;
    run_at := v_start;
  end if;

  v_run_id := wf.uuid7();
  if v_workflow.concurrency is not null then
    v_concurrency_key := coalesce((input #> string_to_array(v_workflow.concurrency ->> 'key', '.'))::text, 'null');
  end if;
  insert into wf.runs (id, workflow, version, status, input, idempotency_key, correlation_id, run_at, debounce_key,
                       concurrency_key, concurrency_limit, priority)
  values (v_run_id, v_workflow.name, v_workflow.current_version,
          case when run_at > clock_timestamp() then 'scheduled' else 'pending' end,
          input, idempotency_key, correlation_id, run_at, v_debounce_key,
          v_concurrency_key, (v_workflow.concurrency ->> 'limit')::int, priority)
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
  -- a priority other than 0: the band queues of the workflow's stages exist before anything is sent
  if priority <> 0 then
    perform wf.ensure_band(f.function, priority)
    from (select distinct d.function from wf.definition_steps d
          where d.workflow = v_workflow.name and d.version = v_workflow.current_version) f;
  end if;
  insert into wf.steps (run_id, name, function, status)
  select v_run_id, d.name, d.function, 'waiting'
  from wf.definition_steps d
  where d.workflow = v_workflow.name and d.version = v_workflow.current_version
    and d.compensates is null;  -- a compensation becomes a step only when its run fails
  -- concurrency: with the key's limit reached the run waits, first in first out (wf.release_key)
  if v_workflow.concurrency is not null then
    perform pg_advisory_xact_lock(7002, hashtext(workflow || '/' || v_concurrency_key));
    if (select count(*) from wf.runs r
        where r.workflow = enqueue.workflow and r.concurrency_limit is not null
          and r.concurrency_key = v_concurrency_key and r.id <> v_run_id and not r.held
          and r.status not in ('completed', 'failed', 'cancelled', 'compensation_failed'))
       >= (v_workflow.concurrency ->> 'limit')::int then
      update wf.runs r set held = true where r.id = v_run_id;
      insert into wf.events (run_id, step, attempt, kind, detail)
      values (v_run_id, null, null, 'run_created',
              jsonb_strip_nulls(jsonb_build_object('version', v_workflow.current_version, 'run_at', run_at,
                                                   'idempotency_key', idempotency_key,
                                                   'held_by_key', v_concurrency_key)));
      return v_run_id;
    end if;
  end if;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (v_run_id, null, null, 'run_created',
          jsonb_strip_nulls(jsonb_build_object('version', v_workflow.current_version, 'run_at', run_at,
                                               'idempotency_key', idempotency_key, 'queued', wf.advance(v_run_id))));
  return v_run_id;
end;
$$;

revoke all on function wf.enqueue(text, jsonb, text, timestamptz, text, int) from public;
grant execute on function wf.enqueue(text, jsonb, text, timestamptz, text, int) to wf_admin;
