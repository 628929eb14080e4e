-- wf.normalize_compensation: a step's `compensate` as a definition row of its own, named
-- `<step>:compensate`: a function call (function, action, payload_template) or a sql step (sql,
-- args_template), with max_retries, timeout_seconds and backoff taken from the step unless
-- given. Its templates see the run like any step's (steps.<step>.output is what it undoes).
-- Raises 22023 naming the place.
create or replace function wf.normalize_compensation(compensate jsonb, workflow text, step text, place text,
                                                     undone jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_key text;
  v_kinds text[];
  v_kind text;
  v_template_key text;
  v_field jsonb;
begin
  if compensate is null or jsonb_typeof(compensate) <> 'object' then
    perform wf.raise_input_error(format('%s must be an object like {"function": "payments", "action": "refund"}', place));
  end if;
  select array_agg(k order by k) into v_kinds from unnest(array['function', 'sql']) k where compensate ? k;
  if cardinality(v_kinds) is distinct from 1 then
    perform wf.raise_input_error(format('%s needs exactly one of function, sql, got %s',
      place, coalesce(array_to_string(v_kinds, ', '), 'none')));
  end if;
  v_kind := v_kinds[1];
  v_template_key := case v_kind when 'function' then 'payload_template' else 'args_template' end;
  for v_key in select jsonb_object_keys(compensate) loop
    if v_key not in (v_kind, v_template_key, 'max_retries', 'timeout_seconds', 'backoff')
       and not (v_kind = 'function' and v_key = 'action') then
      perform wf.raise_input_error(format('%s: unknown key "%s"', place, v_key));
    end if;
  end loop;
  if v_kind = 'function' then
    if jsonb_typeof(compensate -> 'function') is distinct from 'string' or (compensate ->> 'function') !~ '^[a-z0-9][a-z0-9_-]{0,46}$' then
      perform wf.raise_input_error(format('%s: function must match ^[a-z0-9][a-z0-9_-]{0,46}$, got %s',
        place, left((compensate -> 'function')::text, 80)));
    end if;
    if jsonb_typeof(compensate -> 'action') is distinct from 'string' or length(compensate ->> 'action') not between 1 and 200 then
      perform wf.raise_input_error(format('%s: action must be a non-empty string', place));
    end if;
  elsif jsonb_typeof(compensate -> 'sql') is distinct from 'string'
        or (compensate ->> 'sql') !~ '^[A-Za-z_][A-Za-z0-9_$]{0,62}\.[A-Za-z_][A-Za-z0-9_$]{0,62}$' then
    perform wf.raise_input_error(format('%s: sql must name a function as schema.function, got %s',
      place, left((compensate -> 'sql')::text, 80)));
  end if;
  if compensate ? v_template_key and jsonb_typeof(compensate -> v_template_key) <> 'object' then
    perform wf.raise_input_error(format('%s: %s must be a JSON object', place, v_template_key));
  end if;
  for v_field in select jsonb_path_query(coalesce(compensate -> v_template_key, '{}'), 'strict $.** ? (@.type() == "string")') loop
    perform wf.template_vars(v_field #>> '{}', place || ': ' || v_template_key);
  end loop;

  return jsonb_build_object(
    'workflow', workflow,
    'name', step || ':compensate',
    'position', (undone ->> 'position')::int + 10000,
    'kind', v_kind,
    'function', case when v_kind = 'function' then compensate ->> 'function' else '_wf' end,
    'action', case when v_kind = 'function' then compensate ->> 'action' else compensate ->> 'sql' end,
    'payload_template', coalesce(compensate -> v_template_key, '{}'),
    'when_template', null,
    'depends_on', '[]'::jsonb,
    'on_failure', 'abort',
    'max_attempts', wf.int_field(compensate, 'max_retries', place, 0, 100, (undone ->> 'max_attempts')::int - 1) + 1,
    'timeout_seconds', wf.int_field(compensate, 'timeout_seconds', place, 1, 3600, (undone ->> 'timeout_seconds')::int),
    'visibility_timeout', greatest((undone ->> 'visibility_timeout')::int,
                                   wf.int_field(compensate, 'timeout_seconds', place, 1, 3600, (undone ->> 'timeout_seconds')::int) + 15),
    'delay_seconds', 0,
    'backoff', wf.check_backoff(compensate -> 'backoff', place, undone -> 'backoff'),
    'offset_seconds', 0,
    'compensates', step);
end;
$$;

revoke all on function wf.normalize_compensation(jsonb, text, text, text, jsonb) from public;
