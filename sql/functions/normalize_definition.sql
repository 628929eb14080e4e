-- wf.normalize_definition: validate a definition and return its steps with every
-- default applied (keys named as the columns of wf.definition_steps) and the input
-- variables its templates need: {"steps": [...], "input_vars": [...]}.
-- A step has one kind (DESIGN §10): function (function, action, payload_template),
-- workflow (workflow, input_template), sql (sql, args_template) or wait_for; the last three
-- run through the internal stage `_wf`, with `action` naming the child workflow, the SQL
-- function or the signal. Whether a child workflow exists and a SQL function is allowed is
-- checked by wf.define.
-- Raises SQLSTATE 22023 naming the workflow, the step and the field at fault.
create or replace function wf.normalize_definition(definition jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_name text;
  v_where text;
  v_key text;
  v_step jsonb;
  v_place text;
  v_i int := 0;
  v_names text[] := '{}'::text[];
  v_deps text[];
  v_dep text;
  v_previous text;
  v_max_retries int;
  v_timeout int;
  v_vt int;
  v_backoff jsonb;
  v_vars text[] := '{}'::text[];
  v_field jsonb;
  v_remaining text[];
  v_done text[] := '{}'::text[];
  v_progress boolean;
  v_steps jsonb := '[]'::jsonb;
  v_kinds text[];
  v_kind text;
  v_template_key text;
  v_function text;
  v_action text;
  v_wait_seconds int;
  v_step_vars text[] := '{}'::text[];
begin
  -- guard: the definition is an object with a valid name
  if definition is null or jsonb_typeof(definition) <> 'object' then
    perform wf.raise_input_error('definition must be a JSON object');
  end if;
  v_name := definition ->> 'name';
  if jsonb_typeof(definition -> 'name') is distinct from 'string' or v_name !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' then
    perform wf.raise_input_error(format('definition.name must match ^[a-z0-9][a-z0-9_.-]{0,62}$, got %s',
      coalesce(left((definition -> 'name')::text, 80), 'nothing')));
  end if;
  v_where := format('workflow %s', v_name);

  for v_key in select jsonb_object_keys(definition) loop
    if v_key not in ('name', 'description', 'required_fields', 'max_retries', 'timeout_seconds',
                     'visibility_timeout', 'backoff', 'steps', 'input_schema', 'output_template', 'concurrency',
                     'debounce') then
      perform wf.raise_input_error(format('%s: unknown key "%s"', v_where, v_key));
    end if;
  end loop;
  if definition ? 'description' and jsonb_typeof(definition -> 'description') not in ('string', 'null') then
    perform wf.raise_input_error(format('%s: description must be a string', v_where));
  end if;
  if definition ? 'input_schema' then
    if jsonb_typeof(definition -> 'input_schema') <> 'object' then
      perform wf.raise_input_error(format('%s: input_schema must be a JSON Schema object', v_where));
    end if;
    perform wf.check_schema(definition -> 'input_schema', v_where || ': input_schema');
  end if;
  if definition ? 'required_fields' then
    if jsonb_typeof(definition -> 'required_fields') <> 'array'
       or exists (select 1 from jsonb_array_elements(definition -> 'required_fields') f where jsonb_typeof(f) <> 'string') then
      perform wf.raise_input_error(format('%s: required_fields must be an array of strings', v_where));
    end if;
  end if;

  -- flow control (DESIGN §11): a key is a dotted path into the input
  if definition ? 'concurrency' then
    if jsonb_typeof(definition -> 'concurrency') <> 'object'
       or exists (select 1 from jsonb_object_keys(definition -> 'concurrency') k where k not in ('key', 'limit')) then
      perform wf.raise_input_error(format('%s: concurrency must be an object like {"key": "listing_id", "limit": 1}', v_where));
    end if;
    perform wf.check_key_path(definition -> 'concurrency' -> 'key', v_where || ': concurrency.key');
    perform wf.int_field(definition -> 'concurrency', 'limit', v_where || ': concurrency', 1, 10000, 1);
  end if;
  if definition ? 'debounce' then
    if jsonb_typeof(definition -> 'debounce') <> 'object'
       or exists (select 1 from jsonb_object_keys(definition -> 'debounce') k where k not in ('key', 'seconds')) then
      perform wf.raise_input_error(format('%s: debounce must be an object like {"key": "listing_id", "seconds": 30}', v_where));
    end if;
    perform wf.check_key_path(definition -> 'debounce' -> 'key', v_where || ': debounce.key');
    if (definition -> 'debounce' -> 'seconds') is null then
      perform wf.raise_input_error(format('%s: debounce.seconds is required (1 to 86400)', v_where));
    end if;
    perform wf.int_field(definition -> 'debounce', 'seconds', v_where || ': debounce', 1, 86400, null);
  end if;

  if jsonb_typeof(definition -> 'output_template') is distinct from 'null' and definition ? 'output_template' then
    perform wf.check_output_template(definition -> 'output_template', v_where || ': output_template');
  end if;

  v_max_retries := wf.int_field(definition, 'max_retries', v_where, 0, 100, 3);
  v_timeout := wf.int_field(definition, 'timeout_seconds', v_where, 1, 3600, 120);
  v_vt := wf.int_field(definition, 'visibility_timeout', v_where, 1, 43200, null);
  v_backoff := wf.check_backoff(definition -> 'backoff', v_where,
    '{"base_seconds": 5, "factor": 2, "max_seconds": 3600, "jitter": true}');

  if jsonb_typeof(definition -> 'steps') is distinct from 'array' or jsonb_array_length(definition -> 'steps') = 0 then
    perform wf.raise_input_error(format('%s: steps must be a non-empty array', v_where));
  end if;
  if jsonb_array_length(definition -> 'steps') > 200 then
    perform wf.raise_input_error(format('%s: at most 200 steps, got %s', v_where, jsonb_array_length(definition -> 'steps')));
  end if;

  -- first pass: names, so that depends_on can name a later step
  for v_step in select jsonb_array_elements(definition -> 'steps') loop
    v_place := format('%s: steps[%s]', v_where, v_i);
    if jsonb_typeof(v_step) <> 'object' then
      perform wf.raise_input_error(format('%s must be an object', v_place));
    end if;
    if jsonb_typeof(v_step -> 'name') is distinct from 'string' or (v_step ->> 'name') !~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$' then
      perform wf.raise_input_error(format('%s.name must match ^[A-Za-z_][A-Za-z0-9_]{0,62}$, got %s',
        v_place, coalesce(left((v_step -> 'name')::text, 80), 'nothing')));
    end if;
    if (v_step ->> 'name') = any (v_names) then
      perform wf.raise_input_error(format('%s: duplicate step name "%s"', v_place, v_step ->> 'name'));
    end if;
    v_names := v_names || (v_step ->> 'name');
    v_i := v_i + 1;
  end loop;

  v_i := 0;
  for v_step in select jsonb_array_elements(definition -> 'steps') loop
    v_place := format('%s: step %s', v_where, v_step ->> 'name');
    -- the kind: exactly one of its keys
    select array_agg(k order by k) into v_kinds
    from unnest(array['function', 'workflow', 'sql', 'wait_for']) k where v_step ? k;
    if cardinality(v_kinds) is distinct from 1 then
      perform wf.raise_input_error(format('%s: needs exactly one of function, workflow, sql, wait_for, got %s',
        v_place, coalesce(array_to_string(v_kinds, ', '), 'none')));
    end if;
    v_kind := v_kinds[1];
    for v_key in select jsonb_object_keys(v_step) loop
      if v_key not in ('name', 'description', 'on_failure', 'depends_on', 'when', 'delay_seconds', 'max_retries',
                       'timeout_seconds', 'backoff', 'not_before', 'offset_seconds', 'for_each', 'max_parallel',
                       'compensate', v_kind)
         and not (v_kind = 'function' and v_key in ('action', 'payload_template'))
         and not (v_kind = 'workflow' and v_key = 'input_template')
         and not (v_kind = 'sql' and v_key = 'args_template') then
        if v_key in ('action', 'payload_template', 'input_template', 'args_template') then
          perform wf.raise_input_error(format('%s: %s is not a key of a %s step (function: action, payload_template; workflow: input_template; sql: args_template)',
            v_place, v_key, v_kind));
        end if;
        perform wf.raise_input_error(format('%s: unknown key "%s"', v_place, v_key));
      end if;
    end loop;
    v_template_key := case v_kind when 'function' then 'payload_template' when 'workflow' then 'input_template'
                                  when 'sql' then 'args_template' end;
    v_wait_seconds := null;
    if v_kind = 'function' then
      if jsonb_typeof(v_step -> 'function') is distinct from 'string' or (v_step ->> 'function') !~ '^[a-z0-9][a-z0-9_-]{0,46}$' then
        perform wf.raise_input_error(format('%s: function must match ^[a-z0-9][a-z0-9_-]{0,46}$, got %s',
          v_place, coalesce(left((v_step -> 'function')::text, 80), 'nothing')));
      end if;
      if jsonb_typeof(v_step -> 'action') is distinct from 'string' or length(v_step ->> 'action') not between 1 and 200 then
        perform wf.raise_input_error(format('%s: action must be a non-empty string', v_place));
      end if;
      v_function := v_step ->> 'function';
      v_action := v_step ->> 'action';
    elsif v_kind = 'workflow' then
      if jsonb_typeof(v_step -> 'workflow') is distinct from 'string' or (v_step ->> 'workflow') !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' then
        perform wf.raise_input_error(format('%s: workflow must name a workflow (^[a-z0-9][a-z0-9_.-]{0,62}$), got %s',
          v_place, coalesce(left((v_step -> 'workflow')::text, 80), 'nothing')));
      end if;
      v_function := '_wf';
      v_action := v_step ->> 'workflow';
    elsif v_kind = 'sql' then
      if jsonb_typeof(v_step -> 'sql') is distinct from 'string'
         or (v_step ->> 'sql') !~ '^[A-Za-z_][A-Za-z0-9_$]{0,62}\.[A-Za-z_][A-Za-z0-9_$]{0,62}$' then
        perform wf.raise_input_error(format('%s: sql must name a function as schema.function, got %s',
          v_place, coalesce(left((v_step -> 'sql')::text, 80), 'nothing')));
      end if;
      v_function := '_wf';
      v_action := v_step ->> 'sql';
    else
      if jsonb_typeof(v_step -> 'wait_for') is distinct from 'object' then
        perform wf.raise_input_error(format('%s: wait_for must be an object like {"signal": "approved", "timeout_seconds": 86400}', v_place));
      end if;
      for v_key in select jsonb_object_keys(v_step -> 'wait_for') loop
        if v_key not in ('signal', 'timeout_seconds') then
          perform wf.raise_input_error(format('%s: wait_for: unknown key "%s"', v_place, v_key));
        end if;
      end loop;
      if jsonb_typeof(v_step -> 'wait_for' -> 'signal') is distinct from 'string'
         or length(v_step -> 'wait_for' ->> 'signal') not between 1 and 100 then
        perform wf.raise_input_error(format('%s: wait_for.signal must be a name of 1 to 100 characters, got %s',
          v_place, coalesce(left((v_step -> 'wait_for' -> 'signal')::text, 120), 'nothing')));
      end if;
      v_wait_seconds := wf.int_field(v_step -> 'wait_for', 'timeout_seconds', v_place || ': wait_for', 1, 31536000, null);
      v_function := '_wf';
      v_action := v_step -> 'wait_for' ->> 'signal';
    end if;
    -- guard: a wait starts inside wf.claim, where templates are not rendered
    if v_kind = 'wait_for' and (v_step ? 'when' or v_step ? 'not_before' or v_step ? 'for_each') then
      perform wf.raise_input_error(format('%s: a wait_for step takes no %s (put it on a step before the wait)',
        v_place, case when v_step ? 'when' then 'when' when v_step ? 'not_before' then 'not_before' else 'for_each' end));
    end if;
    if v_step ? 'for_each' and (jsonb_typeof(v_step -> 'for_each') <> 'string' or btrim(v_step ->> 'for_each') = '') then
      perform wf.raise_input_error(format('%s: for_each must be a template rendering to a list, like "{{ channels }}"', v_place));
    end if;
    if v_step ? 'max_parallel' and not v_step ? 'for_each' then
      perform wf.raise_input_error(format('%s: max_parallel needs for_each', v_place));
    end if;
    if v_step ? 'offset_seconds' and not v_step ? 'not_before' then
      perform wf.raise_input_error(format('%s: offset_seconds needs not_before', v_place));
    end if;
    if v_step ? 'not_before' and (jsonb_typeof(v_step -> 'not_before') <> 'string' or btrim(v_step ->> 'not_before') = '') then
      perform wf.raise_input_error(format('%s: not_before must be a template rendering to a timestamp, like "{{ meeting_at }}"', v_place));
    end if;
    if v_step ? 'on_failure' and (jsonb_typeof(v_step -> 'on_failure') <> 'string'
                                  or (v_step ->> 'on_failure') not in ('abort', 'continue', 'retry')) then
      perform wf.raise_input_error(format('%s: on_failure must be "abort", "continue" or "retry", got %s', v_place, v_step -> 'on_failure'));
    end if;
    if v_template_key is not null and v_step ? v_template_key and jsonb_typeof(v_step -> v_template_key) <> 'object' then
      perform wf.raise_input_error(format('%s: %s must be a JSON object', v_place, v_template_key));
    end if;
    if v_step ? 'description' and jsonb_typeof(v_step -> 'description') <> 'string' then
      perform wf.raise_input_error(format('%s: description must be a string', v_place));
    end if;
    if v_step ? 'when' and jsonb_typeof(v_step -> 'when') <> 'string' then
      perform wf.raise_input_error(format('%s: when must be a template string', v_place));
    end if;

    -- dependencies: explicit, or the previous step in list order
    if v_step ? 'depends_on' then
      if jsonb_typeof(v_step -> 'depends_on') <> 'array'
         or exists (select 1 from jsonb_array_elements(v_step -> 'depends_on') d where jsonb_typeof(d) <> 'string') then
        perform wf.raise_input_error(format('%s: depends_on must be an array of step names', v_place));
      end if;
      select coalesce(array_agg(distinct d), '{}') into v_deps from jsonb_array_elements_text(v_step -> 'depends_on') d;
      foreach v_dep in array v_deps loop
        if v_dep = v_step ->> 'name' then
          perform wf.raise_input_error(format('%s: depends_on names the step itself', v_place));
        end if;
        if not v_dep = any (v_names) then
          perform wf.raise_input_error(format('%s: depends_on names unknown step "%s"', v_place, v_dep));
        end if;
      end loop;
    elsif v_previous is null then
      v_deps := '{}';
    else
      v_deps := array[v_previous];
    end if;

    -- templates: they parse, and collect the input variables they need
    for v_field in select jsonb_path_query(coalesce(v_step -> v_template_key, '{}'), 'strict $.** ? (@.type() == "string")') loop
      v_step_vars := v_step_vars || wf.template_vars(v_field #>> '{}', v_place || ': ' || v_template_key);
    end loop;
    if v_step ? 'when' then
      v_step_vars := v_step_vars || wf.template_vars(v_step ->> 'when', v_place || ': when');
    end if;
    if v_step ? 'not_before' then
      v_step_vars := v_step_vars || wf.template_vars(v_step ->> 'not_before', v_place || ': not_before');
    end if;
    -- an item of a map step is in its context, not in the input
    if v_step ? 'for_each' then
      v_step_vars := array_remove(array_remove(v_step_vars, 'item'), 'item_index');
    end if;
    v_vars := v_vars || v_step_vars;
    v_step_vars := '{}'::text[];
    if v_step ? 'for_each' then
      v_vars := v_vars || wf.template_vars(v_step ->> 'for_each', v_place || ': for_each');
    end if;

    v_steps := v_steps || jsonb_build_object(
      'workflow', v_name,
      'name', v_step ->> 'name',
      'position', v_i,
      'kind', v_kind,
      'function', v_function,
      'action', v_action,
      'payload_template', coalesce(v_step -> v_template_key, '{}'),
      'wait_seconds', v_wait_seconds,
      'not_before', v_step ->> 'not_before',
      'offset_seconds', wf.int_field(v_step, 'offset_seconds', v_place, -31536000, 31536000, 0),
      'for_each', v_step ->> 'for_each',
      'max_parallel', wf.int_field(v_step, 'max_parallel', v_place, 1, 1000, null),
      'when_template', v_step ->> 'when',
      'depends_on', to_jsonb(v_deps),
      'on_failure', coalesce(v_step ->> 'on_failure', 'abort'),
      'max_attempts', wf.int_field(v_step, 'max_retries', v_place, 0, 100, v_max_retries) + 1,
      'timeout_seconds', wf.int_field(v_step, 'timeout_seconds', v_place, 1, 3600, v_timeout),
      -- the message stays invisible at least for the call plus a margin; the consumer extends it
      'visibility_timeout', greatest(coalesce(v_vt, 0), wf.int_field(v_step, 'timeout_seconds', v_place, 1, 3600, v_timeout) + 15),
      'delay_seconds', wf.int_field(v_step, 'delay_seconds', v_place, 0, 31536000, 0),
      'backoff', wf.check_backoff(v_step -> 'backoff', v_place, v_backoff));
    -- its compensation: a definition row of its own, `<step>:compensate`
    if v_step ? 'compensate' then
      v_steps := v_steps || wf.normalize_compensation(v_step -> 'compensate', v_name, v_step ->> 'name',
        v_place || ': compensate', v_steps -> -1);
    end if;
    v_previous := v_step ->> 'name';
    v_i := v_i + 1;
  end loop;

  -- guard: the dependency graph has no cycle (peel off steps whose dependencies are done)
  v_remaining := v_names;
  loop
    v_progress := false;
    for v_step in
      select jsonb_build_object('name', s ->> 'name', 'deps', coalesce(s -> 'depends_on', 'null'), 'i', i)
      from jsonb_array_elements(definition -> 'steps') with ordinality as t(s, i)
      where s ->> 'name' = any (v_remaining)
      order by i
    loop
      if v_step -> 'deps' = 'null' then
        v_deps := case when (v_step ->> 'i')::int = 1 then '{}'
                       else array[(definition -> 'steps' -> ((v_step ->> 'i')::int - 2)) ->> 'name'] end;
      else
        select coalesce(array_agg(d), '{}') into v_deps from jsonb_array_elements_text(v_step -> 'deps') d;
      end if;
      if v_deps <@ v_done then
        v_done := v_done || (v_step ->> 'name');
        v_remaining := array_remove(v_remaining, v_step ->> 'name');
        v_progress := true;
      end if;
    end loop;
    exit when cardinality(v_remaining) = 0;
    if not v_progress then
      perform wf.raise_input_error(format('%s: depends_on forms a cycle through steps %s', v_where, array_to_string(v_remaining, ', ')));
    end if;
  end loop;

  select coalesce(array_agg(distinct v), '{}') into v_vars
  from (select unnest(v_vars) union all select jsonb_array_elements_text(definition -> 'required_fields')) as t(v);
  return jsonb_build_object('steps', v_steps, 'input_vars', to_jsonb(v_vars));
end;
$$;

revoke all on function wf.normalize_definition(jsonb) from public;
