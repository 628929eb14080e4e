-- wf.configure_stage: limits of a stage (an edge function) that hold across every worker
-- together — at most max_concurrency calls in flight, at most rate_per_second calls started
-- per second with bursts of up to burst (default: one second's worth, at least 1) — enforced
-- when wf.claim starts attempts. Null clears a limit. Raises P0002 for an unknown stage and
-- 22023 naming a bad value.
create or replace function wf.configure_stage(function text, max_concurrency int default null,
                                              rate_per_second numeric default null, burst int default null)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
begin
  if max_concurrency is not null and max_concurrency < 1 then
    perform wf.raise_input_error(format('stage %s: max_concurrency must be at least 1, got %s', function, max_concurrency));
  end if;
  if rate_per_second is not null and (rate_per_second <= 0 or rate_per_second > 100000) then
    perform wf.raise_input_error(format('stage %s: rate_per_second must be more than 0 and at most 100000, got %s',
      function, rate_per_second));
  end if;
  if burst is not null and burst < 1 then
    perform wf.raise_input_error(format('stage %s: burst must be at least 1, got %s', function, burst));
  end if;
  if burst is not null and rate_per_second is null then
    perform wf.raise_input_error(format('stage %s: burst needs rate_per_second', function));
  end if;
  update wf.stages st
  set max_concurrency = configure_stage.max_concurrency,
      rate_per_second = configure_stage.rate_per_second,
      burst = case when configure_stage.rate_per_second is null then null
                   else coalesce(configure_stage.burst, greatest(1, ceil(configure_stage.rate_per_second))::int) end,
      tokens = null, tokens_at = null
  where st.name = configure_stage.function;
  if not found then
    raise exception 'unknown stage % (stages are created by wf.define)', coalesce(function, 'null') using errcode = 'P0002';
  end if;
  if max_concurrency is null then
    delete from wf.stage_leases l where l.stage = configure_stage.function;
  end if;
  return true;
end;
$$;

revoke all on function wf.configure_stage(text, int, numeric, int) from public;
grant execute on function wf.configure_stage(text, int, numeric, int) to wf_admin;
