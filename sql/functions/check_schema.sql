-- wf.check_schema: validate a definition's input_schema at wf.define time (recursively):
-- only the JSON Schema keywords wf.schema_error enforces (plus the annotations title,
-- description, $schema, $id, $comment, default, examples), each with a value of the right
-- shape. Raises SQLSTATE 22023 naming the place (`workflow w: input_schema.properties.email:
-- unsupported keyword "oneOf"`). A keyword wf would silently ignore is refused instead.
create or replace function wf.check_schema(schema jsonb, place text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_key text;
  v_value jsonb;
  v_sub record;
begin
  -- guard: a schema is an object, or true / false
  if jsonb_typeof(schema) = 'boolean' then
    return;
  end if;
  if schema is null or jsonb_typeof(schema) <> 'object' then
    perform wf.raise_input_error(format('%s must be a JSON Schema object', place));
  end if;
  for v_key, v_value in select e.key, e.value from jsonb_each(schema) e loop
    case v_key
    when 'type' then
      if not (jsonb_typeof(v_value) = 'string' and v_value #>> '{}' in ('string', 'number', 'integer', 'boolean', 'object', 'array', 'null'))
         and not (jsonb_typeof(v_value) = 'array' and jsonb_array_length(v_value) > 0
                  and not exists (select 1 from jsonb_array_elements(v_value) t
                                  where jsonb_typeof(t) <> 'string'
                                     or t #>> '{}' not in ('string', 'number', 'integer', 'boolean', 'object', 'array', 'null'))) then
        perform wf.raise_input_error(format('%s.type must be one of string, number, integer, boolean, object, array, null (or a list of them), got %s',
          place, left(v_value::text, 80)));
      end if;
    when 'properties' then
      if jsonb_typeof(v_value) <> 'object' then
        perform wf.raise_input_error(format('%s.properties must be an object of schemas', place));
      end if;
      for v_sub in select e.key, e.value from jsonb_each(v_value) e loop
        perform wf.check_schema(v_sub.value, format('%s.properties.%s', place, v_sub.key));
      end loop;
    when 'additionalProperties', 'items' then
      perform wf.check_schema(v_value, format('%s.%s', place, v_key));
    when 'required' then
      if jsonb_typeof(v_value) <> 'array'
         or exists (select 1 from jsonb_array_elements(v_value) r where jsonb_typeof(r) <> 'string') then
        perform wf.raise_input_error(format('%s.required must be an array of property names', place));
      end if;
    when 'enum' then
      if jsonb_typeof(v_value) <> 'array' or jsonb_array_length(v_value) = 0 then
        perform wf.raise_input_error(format('%s.enum must be a non-empty array', place));
      end if;
    when 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum' then
      if jsonb_typeof(v_value) <> 'number' then
        perform wf.raise_input_error(format('%s.%s must be a number, got %s', place, v_key, left(v_value::text, 80)));
      end if;
    when 'minLength', 'maxLength', 'minItems', 'maxItems' then
      if jsonb_typeof(v_value) <> 'number' or (v_value #>> '{}')::numeric < 0
         or (v_value #>> '{}')::numeric <> trunc((v_value #>> '{}')::numeric) then
        perform wf.raise_input_error(format('%s.%s must be a non-negative integer, got %s', place, v_key, left(v_value::text, 80)));
      end if;
    when 'uniqueItems' then
      if jsonb_typeof(v_value) <> 'boolean' then
        perform wf.raise_input_error(format('%s.uniqueItems must be true or false', place));
      end if;
    when 'pattern' then
      if jsonb_typeof(v_value) <> 'string' then
        perform wf.raise_input_error(format('%s.pattern must be a string', place));
      end if;
      begin
        perform '' ~ (v_value #>> '{}');
      exception when invalid_regular_expression then
        perform wf.raise_input_error(format('%s.pattern is not a valid regular expression: %s', place, v_value #>> '{}'));
      end;
    when 'format' then
      if jsonb_typeof(v_value) <> 'string' or v_value #>> '{}' not in ('date-time', 'date', 'email', 'uuid', 'uri') then
        perform wf.raise_input_error(format('%s.format must be one of date-time, date, email, uuid, uri, got %s',
          place, left(v_value::text, 80)));
      end if;
    when 'const', 'title', 'description', '$schema', '$id', '$comment', 'default', 'examples' then
      null;  -- any value; the annotations are not enforced
    else
      perform wf.raise_input_error(format('%s: unsupported keyword "%s" (supported: type, properties, required, additionalProperties, enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength, pattern, format, items, minItems, maxItems, uniqueItems)',
        place, v_key));
    end case;
  end loop;
end;
$$;

revoke all on function wf.check_schema(jsonb, text) from public;
