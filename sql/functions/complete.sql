-- wf.complete: report a successful call; output becomes steps.<step>.output. One answer
-- takes the one-by-one path (fewer statements than a batch of one); the worker's group
-- commits go through wf.complete_batch, and tests keep the two histories identical.
create or replace function wf.complete(run_id uuid, step text, attempt int, output jsonb)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cur record;
  v_size int := octet_length(output::text);
  v_max_bytes int := (select s.value::int from wf.settings s where s.key = 'max_output_bytes');
begin
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'complete');
  if not found then
    return false;
  end if;
  -- guard: an output too large to store fails the step instead of bloating every later claim
  if v_size > v_max_bytes then
    return wf.fail(run_id, step, attempt, format('output is %s bytes, more than the %s stored', v_size, v_max_bytes), false);
  end if;
  perform wf.finish_step(run_id, step, attempt, 'succeeded', v_cur.queue, v_cur.msg_id, v_cur.run_status,
    output, null, null,
    jsonb_build_object('duration_ms', round(extract(epoch from clock_timestamp() - v_cur.started_at) * 1000)));
  return true;
end;
$$;

revoke all on function wf.complete(uuid, text, int, jsonb) from public;
grant execute on function wf.complete(uuid, text, int, jsonb) to wf_worker, wf_admin;
