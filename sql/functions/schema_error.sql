-- wf.schema_error: the first way a value breaks a schema checked by wf.check_schema, as
-- `<path>: <what>` (`input.guest.email: does not match format "email"`), or null when it
-- conforms. wf.enqueue raises it as SQLSTATE 22023. Properties are checked in name order,
-- array items in order, so the message is stable.
create or replace function wf.schema_error(schema jsonb, value jsonb, path text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_type text := jsonb_typeof(value);
  v_types text[];
  v_num numeric;
  v_text text;
  v_sub record;
  v_error text;
  v_missing text;
begin
  if schema = 'true'::jsonb or schema = '{}'::jsonb then
    return null;
  end if;
  if schema = 'false'::jsonb then
    return format('%s: is not allowed here', path);
  end if;

  if schema ? 'type' then
    v_types := case when jsonb_typeof(schema -> 'type') = 'array'
                    then array(select jsonb_array_elements_text(schema -> 'type'))
                    else array[schema ->> 'type'] end;
    if not (v_type = any (v_types)
            or (v_type = 'number' and 'integer' = any (v_types) and (value #>> '{}')::numeric = trunc((value #>> '{}')::numeric))) then
      return format('%s: must be of type %s, got %s', path, array_to_string(v_types, ' or '),
                    case when v_type = 'number' and 'integer' = any (v_types) then 'a number with a fraction' else v_type end);
    end if;
  end if;
  if schema ? 'const' and value <> schema -> 'const' then
    return format('%s: must be %s', path, left((schema -> 'const')::text, 100));
  end if;
  if schema ? 'enum' and not exists (select 1 from jsonb_array_elements(schema -> 'enum') e where e = schema_error.value) then
    return format('%s: must be one of %s, got %s', path, left((schema -> 'enum')::text, 200), left(value::text, 100));
  end if;

  if v_type = 'number' then
    v_num := (value #>> '{}')::numeric;
    if schema ? 'minimum' and v_num < (schema ->> 'minimum')::numeric then
      return format('%s: must be at least %s, got %s', path, schema ->> 'minimum', v_num);
    end if;
    if schema ? 'maximum' and v_num > (schema ->> 'maximum')::numeric then
      return format('%s: must be at most %s, got %s', path, schema ->> 'maximum', v_num);
    end if;
    if schema ? 'exclusiveMinimum' and v_num <= (schema ->> 'exclusiveMinimum')::numeric then
      return format('%s: must be more than %s, got %s', path, schema ->> 'exclusiveMinimum', v_num);
    end if;
    if schema ? 'exclusiveMaximum' and v_num >= (schema ->> 'exclusiveMaximum')::numeric then
      return format('%s: must be less than %s, got %s', path, schema ->> 'exclusiveMaximum', v_num);
    end if;
  elsif v_type = 'string' then
    v_text := value #>> '{}';
    if schema ? 'minLength' and length(v_text) < (schema ->> 'minLength')::numeric then
      return format('%s: must be at least %s characters long, got %s', path, schema ->> 'minLength', length(v_text));
    end if;
    if schema ? 'maxLength' and length(v_text) > (schema ->> 'maxLength')::numeric then
      return format('%s: must be at most %s characters long, got %s', path, schema ->> 'maxLength', length(v_text));
    end if;
    if schema ? 'pattern' and v_text !~ (schema ->> 'pattern') then
      return format('%s: does not match pattern %s', path, to_jsonb(schema ->> 'pattern'));
    end if;
    if schema ? 'format' and not wf.matches_format(v_text, schema ->> 'format') then
      return format('%s: does not match format "%s"', path, schema ->> 'format');
    end if;
  elsif v_type = 'array' then
    if schema ? 'minItems' and jsonb_array_length(value) < (schema ->> 'minItems')::numeric then
      return format('%s: must have at least %s items, got %s', path, schema ->> 'minItems', jsonb_array_length(value));
    end if;
    if schema ? 'maxItems' and jsonb_array_length(value) > (schema ->> 'maxItems')::numeric then
      return format('%s: must have at most %s items, got %s', path, schema ->> 'maxItems', jsonb_array_length(value));
    end if;
    if (schema -> 'uniqueItems') = 'true'::jsonb
       and (select count(distinct e) from jsonb_array_elements(schema_error.value) e) < jsonb_array_length(value) then
      return format('%s: items must be unique', path);
    end if;
    if schema ? 'items' then
      for v_sub in select e.value, e.ordinality - 1 as i from jsonb_array_elements(schema_error.value) with ordinality e loop
        v_error := wf.schema_error(schema -> 'items', v_sub.value, format('%s[%s]', path, v_sub.i));
        if v_error is not null then
          return v_error;
        end if;
      end loop;
    end if;
  elsif v_type = 'object' then
    select string_agg(r, ', ' order by r) into v_missing
    from jsonb_array_elements_text(coalesce(schema -> 'required', '[]')) r
    where not schema_error.value ? r;
    if v_missing is not null then
      return format('%s: is missing required propert%s %s', path,
                    case when v_missing like '%,%' then 'ies' else 'y' end, v_missing);
    end if;
    for v_sub in select e.key, e.value from jsonb_each(schema_error.value) e order by e.key loop
      if schema -> 'properties' ? v_sub.key then
        v_error := wf.schema_error(schema -> 'properties' -> v_sub.key, v_sub.value, path || '.' || v_sub.key);
      elsif schema ? 'additionalProperties' then
        v_error := wf.schema_error(schema -> 'additionalProperties', v_sub.value, path || '.' || v_sub.key);
        if v_error is not null and schema -> 'additionalProperties' = 'false'::jsonb then
          v_error := format('%s.%s: is not an allowed property', path, v_sub.key);
        end if;
      end if;
      if v_error is not null then
        return v_error;
      end if;
    end loop;
  end if;
  return null;
end;
$$;

revoke all on function wf.schema_error(jsonb, jsonb, text) from public;
