-- wf.int_field: read an optional integer field of a definition, naming the place when it is bad
create or replace function wf.int_field(obj jsonb, field text, place text, min_value int, max_value int, fallback int)
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

revoke all on function wf.int_field(jsonb, text, text, int, int, int) from public;
