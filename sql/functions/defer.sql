-- wf.defer: a step's not_before (rendered by the worker at claim, plus offset_seconds) is
-- still ahead: the claimed attempt is given back (the attempt count is as before the claim)
-- and the step's message comes back at that time. Returns false — and changes nothing —
-- when the time has come (the worker goes on with the call) or the attempt is not current.
create or replace function wf.defer(run_id uuid, step text, attempt int, until timestamptz)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cur record;
  v_delay int;
begin
  if until is null or not isfinite(until) then
    perform wf.raise_input_error(format('run %s: step %s: defer needs a finite time', run_id, step));
  end if;
  v_delay := ceil(extract(epoch from until - clock_timestamp()))::int;
  if v_delay <= 0 then
    return false;
  end if;
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'defer');
  if not found then
    return false;
  end if;
  -- a new message, due at that time (the read one is archived: see wf.queue_counts)
  perform pgmq.archive(v_cur.queue, v_cur.msg_id);
  v_cur.msg_id := pgmq.send(v_cur.queue, jsonb_build_object('run_id', run_id, 'step', step), least(v_delay, 315360000));
  update wf.steps s
  set status = 'queued', attempt = s.attempt - 1, started_at = null, lease_until = null, queued_at = until,
      msg_id = v_cur.msg_id
  where s.run_id = defer.run_id and s.name = defer.step;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (run_id, step, attempt, 'deferred', jsonb_build_object('not_before', until));
  return true;
end;
$$;

revoke all on function wf.defer(uuid, text, int, timestamptz) from public;
grant execute on function wf.defer(uuid, text, int, timestamptz) to wf_worker, wf_admin;
