-- wf.expand_map: a map step's attempt (its for_each rendered by the worker) becomes its items:
-- one step row per item, `<step>[<index>]`, with the map step's function and definition, each
-- with its own attempts. The first max_parallel of them are queued (wf.map_progress); the map
-- step waits for them without a lease. An empty list succeeds at once with []. More than 1,000
-- items, or something that is not a list, fails the step without retry, naming the size.
-- Returns how many items there are (null: the attempt is not current).
create or replace function wf.expand_map(run_id uuid, step text, attempt int, items jsonb)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cur record;
  v_count int;
begin
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'expand_map');
  if not found then
    return null;
  end if;
  -- guard: a list of at most 1,000 items
  if items is null or jsonb_typeof(items) <> 'array' then
    perform wf.fail(run_id, step, attempt,
      format('step %s: for_each rendered %s, not a list', step, coalesce(jsonb_typeof(items), 'null')), false);
    return null;
  end if;
  v_count := jsonb_array_length(items);
  if v_count > 1000 then
    perform wf.fail(run_id, step, attempt,
      format('step %s: for_each rendered %s items, more than the 1000 allowed', step, v_count), false);
    return null;
  end if;
  if v_count = 0 then
    perform wf.complete(run_id, step, attempt, '[]'::jsonb);
    return 0;
  end if;

  insert into wf.steps (run_id, name, function, status, map_step, item, item_value)
  select expand_map.run_id, format('%s[%s]', expand_map.step, e.i - 1), s.function, 'waiting',
         expand_map.step, (e.i - 1)::int, e.value
  from wf.steps s, jsonb_array_elements(items) with ordinality as e(value, i)
  where s.run_id = expand_map.run_id and s.name = expand_map.step
  -- guard: a repeated call for the same attempt (its answer was lost) expands nothing twice
  on conflict on constraint steps_pkey do nothing;
  perform pgmq.archive(v_cur.queue, v_cur.msg_id);
  update wf.steps s set lease_until = null
  where s.run_id = expand_map.run_id and s.name = expand_map.step;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (run_id, step, attempt, 'map_started', jsonb_build_object('items', v_count));
  perform wf.map_progress(run_id, step);
  return v_count;
end;
$$;

revoke all on function wf.expand_map(uuid, text, int, jsonb) from public;
grant execute on function wf.expand_map(uuid, text, int, jsonb) to wf_worker, wf_admin;
