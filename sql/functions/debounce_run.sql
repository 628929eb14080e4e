-- wf.debounce_run: an enqueue with the debounce key of a run that has not started yet: that
-- run takes the new input and starts at the new time — its first messages are sent again with
-- the new delay. Returns the run's id. Callers hold the debounce key's lock.
create or replace function wf.debounce_run(p_run_id uuid, p_input jsonb, p_start timestamptz)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_queued jsonb;
begin
  perform pg_advisory_xact_lock(7001, hashtext(p_run_id::text));
  perform wf.unqueue_steps(p_run_id);
  update wf.runs r set input = p_input, run_at = p_start where r.id = p_run_id;
  -- a held run (its concurrency key is busy) stays held: it is queued when released
  if not (select r.held from wf.runs r where r.id = p_run_id) then
    v_queued := wf.advance(p_run_id);
  end if;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (p_run_id, null, null, 'run_debounced', jsonb_strip_nulls(jsonb_build_object('run_at', p_start, 'queued', v_queued)));
  return p_run_id;
end;
$$;

revoke all on function wf.debounce_run(uuid, jsonb, timestamptz) from public;
