-- wf.backoff_delay: seconds to wait before retry number n (1-based)
create or replace function wf.backoff_delay(backoff jsonb, n int)
returns int
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_delay numeric;
begin
  if backoff ? 'delays' then
    return (backoff -> 'delays' ->> (least(n, jsonb_array_length(backoff -> 'delays')) - 1))::numeric::int;
  end if;
  v_delay := least((backoff ->> 'base_seconds')::numeric * power((backoff ->> 'factor')::numeric, greatest(n - 1, 0)),
                   (backoff ->> 'max_seconds')::numeric);
  if (backoff ->> 'jitter')::boolean then
    -- equal jitter: between half and all of the delay, so retries of many runs spread out
    v_delay := v_delay * (0.5 + random() * 0.5);
  end if;
  return ceil(v_delay)::int;
end;
$$;

revoke all on function wf.backoff_delay(jsonb, int) from public;
