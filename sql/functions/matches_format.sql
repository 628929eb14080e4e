-- wf.matches_format: whether a string is in one of the JSON Schema formats wf.schema_error
-- checks (date-time, date, email, uuid, uri). date-time is RFC 3339 with a time zone and a
-- real calendar date; email is the practical local@domain.tld check, not RFC 5322.
create or replace function wf.matches_format(value text, format text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
  case format
  when 'date-time' then
    if value !~ '^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$' then
      return false;
    end if;
    perform value::timestamptz;
  when 'date' then
    if value !~ '^\d{4}-\d{2}-\d{2}$' then
      return false;
    end if;
    perform value::date;
  when 'email' then
    return value ~ '^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$';
  when 'uuid' then
    return value ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
  when 'uri' then
    return value ~ '^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$';
  else
    return true;
  end case;
  return true;
exception when datetime_field_overflow or invalid_datetime_format then
  -- guard: the right shape but no such day (2026-02-30) or hour (25:00)
  return false;
end;
$$;

revoke all on function wf.matches_format(text, text) from public;
