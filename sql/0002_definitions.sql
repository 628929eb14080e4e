-- wf 0002: workflow definitions — validation, versioned storage, activation.

-- wf.template_vars: check that one template string parses (balanced delimiters,
-- non-empty expressions, balanced brackets and quotes) and return the input
-- variables it needs. A variable counts when an expression is a plain path
-- (`{{ name }}`, `{{ name.field }}`, `{{ input.name }}`, optionally filtered);
-- `steps`, `run` and expressions with a `default` filter are left to run time.
create function wf.template_vars(template text, place text)
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_rest text;
  v_expr text;
  v_head text;
  v_match text[];
  v_vars text[] := '{}'::text[];
  v_depth int;
  v_quote text;
  v_ch text;
begin
  if template is null or position('{' in template) = 0 and position('}' in template) = 0 then
    return v_vars;
  end if;

  -- guard: every opening delimiter has its closing one and nothing is left over
  v_rest := regexp_replace(template, '\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}', '', 'gs');
  if v_rest ~ '\{\{|\}\}|\{%|%\}|\{#|#\}' then
    perform wf.raise_input_error(format('%s: template does not parse (unbalanced {{ }} or {%% %%}): %s', place, left(template, 200)));
  end if;

  for v_match in select regexp_matches(template, '\{\{(.*?)\}\}|\{%(.*?)%\}', 'gs') loop
    v_expr := coalesce(v_match[1], v_match[2]);
    if btrim(v_expr, E' \t\r\n-+') = '' then
      perform wf.raise_input_error(format('%s: template does not parse (empty expression): %s', place, left(template, 200)));
    end if;

    -- guard: brackets and quotes balance inside the expression
    v_depth := 0;
    v_quote := null;
    foreach v_ch in array regexp_split_to_array(v_expr, '') loop
      if v_quote is not null then
        if v_ch = v_quote then v_quote := null; end if;
      elsif v_ch in ('''', '"') then
        v_quote := v_ch;
      elsif v_ch in ('(', '[') then
        v_depth := v_depth + 1;
      elsif v_ch in (')', ']') then
        v_depth := v_depth - 1;
        exit when v_depth < 0;
      end if;
    end loop;
    if v_depth <> 0 or v_quote is not null then
      perform wf.raise_input_error(format('%s: template does not parse (unbalanced brackets or quotes in "%s")', place, btrim(v_expr)));
    end if;

    continue when v_match[1] is null;  -- {% statements %} are checked at run time
    -- a variable with a default filter is optional (`\y` is a word boundary; `\b` would be a backspace)
    continue when v_expr ~ '\|\s*(default|d)\y';
    v_head := btrim(split_part(v_expr, '|', 1));
    v_match := regexp_match(v_head, '^([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\]]*\])*$');
    continue when v_match is null;
    if v_match[1] = 'input' then
      if v_match[2] is not null then
        v_vars := v_vars || v_match[2];
      end if;
    elsif v_match[1] not in ('steps', 'run', 'true', 'false', 'none', 'True', 'False', 'None', 'loop', 'range') then
      v_vars := v_vars || v_match[1];
    end if;
  end loop;
  return v_vars;
end;
$$;

-- wf.int_field: read an optional integer field of a definition, naming the place when it is bad
create function wf.int_field(obj jsonb, field text, place text, min_value int, max_value int, fallback int)
returns int
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_value jsonb := obj -> field;
begin
  if v_value is null or jsonb_typeof(v_value) = 'null' then
    return fallback;
  end if;
  if jsonb_typeof(v_value) <> 'number' or v_value::text::numeric <> trunc(v_value::text::numeric)
     or v_value::text::numeric not between min_value and max_value then
    perform wf.raise_input_error(format('%s.%s must be an integer between %s and %s, got %s',
      place, field, min_value, max_value, left(v_value::text, 50)));
  end if;
  -- through numeric: JSON writes a whole number as 3 or 3.0, and '3.0'::int does not parse
  return v_value::text::numeric::int;
end;
$$;

-- wf.check_backoff: validate a backoff object and return it with defaults filled in
create function wf.check_backoff(backoff jsonb, place text, fallback jsonb)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_key text;
  v_delay jsonb;
  v_factor jsonb;
begin
  if backoff is null or jsonb_typeof(backoff) = 'null' then
    return fallback;
  end if;
  if jsonb_typeof(backoff) <> 'object' then
    perform wf.raise_input_error(format('%s.backoff must be an object', place));
  end if;
  for v_key in select jsonb_object_keys(backoff) loop
    if v_key not in ('base_seconds', 'factor', 'max_seconds', 'jitter', 'delays') then
      perform wf.raise_input_error(format('%s.backoff: unknown key "%s" (allowed: base_seconds, factor, max_seconds, jitter, delays)', place, v_key));
    end if;
  end loop;
  if backoff ? 'delays' then
    if jsonb_typeof(backoff -> 'delays') <> 'array' or jsonb_array_length(backoff -> 'delays') = 0 then
      perform wf.raise_input_error(format('%s.backoff.delays must be a non-empty array of seconds', place));
    end if;
    for v_delay in select jsonb_array_elements(backoff -> 'delays') loop
      if jsonb_typeof(v_delay) <> 'number' or v_delay::text::numeric <> trunc(v_delay::text::numeric)
         or v_delay::text::numeric not between 0 and 604800 then
        perform wf.raise_input_error(format('%s.backoff.delays must hold whole seconds between 0 and 604800, got %s', place, left(v_delay::text, 50)));
      end if;
    end loop;
    -- stored as plain integers (5.0 → 5): wf.backoff_delay reads them as int at every retry
    return jsonb_build_object('delays', (select jsonb_agg(d::text::numeric::int order by i)
                                         from jsonb_array_elements(backoff -> 'delays') with ordinality as t(d, i)));
  end if;
  v_factor := coalesce(backoff -> 'factor', fallback -> 'factor', '2');
  if jsonb_typeof(v_factor) <> 'number' or v_factor::text::numeric not between 1 and 10 then
    perform wf.raise_input_error(format('%s.backoff.factor must be a number between 1 and 10, got %s', place, left(v_factor::text, 50)));
  end if;
  if backoff ? 'jitter' and jsonb_typeof(backoff -> 'jitter') <> 'boolean' then
    perform wf.raise_input_error(format('%s.backoff.jitter must be true or false', place));
  end if;
  return jsonb_build_object(
    'base_seconds', wf.int_field(backoff, 'base_seconds', place || '.backoff', 1, 86400, coalesce((fallback ->> 'base_seconds')::int, 5)),
    'factor', v_factor,
    'max_seconds', wf.int_field(backoff, 'max_seconds', place || '.backoff', 1, 604800, coalesce((fallback ->> 'max_seconds')::int, 3600)),
    'jitter', coalesce(backoff -> 'jitter', fallback -> 'jitter', 'true'));
end;
$$;

-- wf.normalize_definition: validate a definition and return its steps with every
-- default applied (keys named as the columns of wf.definition_steps) and the input
-- variables its templates need: {"steps": [...], "input_vars": [...]}.
-- Raises SQLSTATE 22023 naming the workflow, the step and the field at fault.
create function wf.normalize_definition(definition jsonb)
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
                     'visibility_timeout', 'backoff', 'steps', 'input_schema') then
      perform wf.raise_input_error(format('%s: unknown key "%s"', v_where, v_key));
    end if;
  end loop;
  if definition ? 'description' and jsonb_typeof(definition -> 'description') not in ('string', 'null') then
    perform wf.raise_input_error(format('%s: description must be a string', v_where));
  end if;
  if definition ? 'input_schema' and jsonb_typeof(definition -> 'input_schema') <> 'object' then
    perform wf.raise_input_error(format('%s: input_schema must be a JSON Schema object', v_where));
  end if;
  if definition ? 'required_fields' then
    if jsonb_typeof(definition -> 'required_fields') <> 'array'
       or exists (select 1 from jsonb_array_elements(definition -> 'required_fields') f where jsonb_typeof(f) <> 'string') then
      perform wf.raise_input_error(format('%s: required_fields must be an array of strings', v_where));
    end if;
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
    for v_key in select jsonb_object_keys(v_step) loop
      if v_key not in ('name', 'description', 'function', 'action', 'payload_template', 'on_failure', 'depends_on',
                       'when', 'delay_seconds', 'max_retries', 'timeout_seconds', 'backoff') then
        perform wf.raise_input_error(format('%s: unknown key "%s"', v_place, v_key));
      end if;
    end loop;
    if jsonb_typeof(v_step -> 'function') is distinct from 'string' or (v_step ->> 'function') !~ '^[a-z0-9][a-z0-9_-]{0,46}$' then
      perform wf.raise_input_error(format('%s: function must match ^[a-z0-9][a-z0-9_-]{0,46}$, got %s',
        v_place, coalesce(left((v_step -> 'function')::text, 80), 'nothing')));
    end if;
    if jsonb_typeof(v_step -> 'action') is distinct from 'string' or length(v_step ->> 'action') not between 1 and 200 then
      perform wf.raise_input_error(format('%s: action must be a non-empty string', v_place));
    end if;
    if v_step ? 'on_failure' and (jsonb_typeof(v_step -> 'on_failure') <> 'string'
                                  or (v_step ->> 'on_failure') not in ('abort', 'continue', 'retry')) then
      perform wf.raise_input_error(format('%s: on_failure must be "abort", "continue" or "retry", got %s', v_place, v_step -> 'on_failure'));
    end if;
    if v_step ? 'payload_template' and jsonb_typeof(v_step -> 'payload_template') <> 'object' then
      perform wf.raise_input_error(format('%s: payload_template must be a JSON object', v_place));
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
    for v_field in select jsonb_path_query(coalesce(v_step -> 'payload_template', '{}'), 'strict $.** ? (@.type() == "string")') loop
      v_vars := v_vars || wf.template_vars(v_field #>> '{}', v_place || ': payload_template');
    end loop;
    if v_step ? 'when' then
      v_vars := v_vars || wf.template_vars(v_step ->> 'when', v_place || ': when');
    end if;

    v_steps := v_steps || jsonb_build_object(
      'workflow', v_name,
      'name', v_step ->> 'name',
      'position', v_i,
      'function', v_step ->> 'function',
      'action', v_step ->> 'action',
      'payload_template', coalesce(v_step -> 'payload_template', '{}'),
      'when_template', v_step ->> 'when',
      'depends_on', to_jsonb(v_deps),
      'on_failure', coalesce(v_step ->> 'on_failure', 'abort'),
      'max_attempts', wf.int_field(v_step, 'max_retries', v_place, 0, 100, v_max_retries) + 1,
      'timeout_seconds', wf.int_field(v_step, 'timeout_seconds', v_place, 1, 3600, v_timeout),
      -- the message stays invisible at least for the call plus a margin; the consumer extends it
      'visibility_timeout', greatest(coalesce(v_vt, 0), wf.int_field(v_step, 'timeout_seconds', v_place, 1, 3600, v_timeout) + 15),
      'delay_seconds', wf.int_field(v_step, 'delay_seconds', v_place, 0, 31536000, 0),
      'backoff', wf.check_backoff(v_step -> 'backoff', v_place, v_backoff));
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

-- wf.define: validate and store a definition; identical → the current version, changed → n+1
create function wf.define(definition jsonb)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_normal jsonb := wf.normalize_definition(definition);
  v_name text := definition ->> 'name';
  v_checksum text := md5(definition::text);
  v_version int;
  v_current record;
  v_stage record;
begin
  perform pg_advisory_xact_lock(hashtext('wf.define'), hashtext(v_name));

  select w.current_version, d.checksum into v_current
  from wf.workflows w join wf.definitions d on d.workflow = w.name and d.version = w.current_version
  where w.name = v_name;
  if found and v_current.checksum = v_checksum then
    return v_current.current_version;
  end if;

  -- stages: one per function, each with its queue; two names must not share a queue
  for v_stage in
    select s ->> 'function' as name, max((s ->> 'visibility_timeout')::int) as vt
    from jsonb_array_elements(v_normal -> 'steps') s group by 1
  loop
    if exists (select 1 from wf.stages st where st.queue = wf.queue_name(v_stage.name) and st.name <> v_stage.name) then
      perform wf.raise_input_error(format('workflow %s: function %s would share queue %s with function %s',
        v_name, v_stage.name, wf.queue_name(v_stage.name),
        (select st.name from wf.stages st where st.queue = wf.queue_name(v_stage.name))));
    end if;
    insert into wf.stages (name, queue, visibility_timeout)
    values (v_stage.name, wf.queue_name(v_stage.name), v_stage.vt)
    on conflict (name) do update set visibility_timeout = greatest(wf.stages.visibility_timeout, excluded.visibility_timeout);
    perform pgmq.create(wf.queue_name(v_stage.name));
  end loop;

  v_version := coalesce((select max(d.version) from wf.definitions d where d.workflow = v_name), 0) + 1;
  insert into wf.definitions (workflow, version, definition, checksum, input_vars)
  values (v_name, v_version, definition, v_checksum,
          array(select jsonb_array_elements_text(v_normal -> 'input_vars')));
  insert into wf.definition_steps
  select (jsonb_populate_record(null::wf.definition_steps, s || jsonb_build_object('version', v_version))).*
  from jsonb_array_elements(v_normal -> 'steps') s;
  insert into wf.workflows (name, current_version) values (v_name, v_version)
  on conflict (name) do update set current_version = excluded.current_version, updated_at = now();
  return v_version;
end;
$$;

-- wf.set_active: shared body of activate/deactivate
create function wf.set_active(workflow text, active boolean)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  if workflow is null then
    perform wf.raise_input_error('workflow must not be null');
  end if;
  update wf.workflows w set active = set_active.active, updated_at = now() where w.name = set_active.workflow;
  if not found then
    raise exception 'unknown workflow %', workflow using errcode = 'P0002';
  end if;
  return true;
end;
$$;

-- wf.activate: let new runs of a workflow start again
create function wf.activate(workflow text)
returns boolean
language sql
set search_path = ''
as $$ select wf.set_active(workflow, true) $$;

-- wf.deactivate: refuse new runs of a workflow; running ones go on
create function wf.deactivate(workflow text)
returns boolean
language sql
set search_path = ''
as $$ select wf.set_active(workflow, false) $$;
