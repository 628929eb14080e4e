-- wf.check_key_path: a flow-control key (concurrency.key, debounce.key) is a dotted path into
-- the run's input (`listing_id`, `record.table`). Raises 22023 naming the place.
create or replace function wf.check_key_path(path jsonb, place text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if jsonb_typeof(path) is distinct from 'string'
     or (path #>> '{}') !~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,9}$' then
    perform wf.raise_input_error(format('%s must be a dotted path into the input, like "listing_id" or "record.id", got %s',
      place, coalesce(left(path::text, 80), 'nothing')));
  end if;
end;
$$;

revoke all on function wf.check_key_path(jsonb, text) from public;
