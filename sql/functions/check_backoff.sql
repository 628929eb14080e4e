-- wf.check_backoff: validate a backoff object and return it with defaults filled in
create or replace function wf.check_backoff(backoff jsonb, place text, fallback jsonb)
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

revoke all on function wf.check_backoff(jsonb, text, jsonb) from public;
