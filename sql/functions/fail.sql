-- wf.fail: report a failed call; retried with backoff while attempts remain and
-- the error is retryable, otherwise the step's on_failure decides
create or replace function wf.fail(
  run_id uuid,
  step text,
  attempt int,
  error text,
  retryable boolean default true,
  http_status int default null,
  retry_after_seconds int default null)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cur record;
  v_error text := left(coalesce(error, 'unknown error'), 4000);
  v_delay int;
  v_detail jsonb;
  v_stage text;
begin
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'fail');
  if not found then
    return false;
  end if;
  v_detail := jsonb_strip_nulls(jsonb_build_object('error', v_error, 'http_status', http_status,
    'duration_ms', round(extract(epoch from clock_timestamp() - v_cur.started_at) * 1000)));

  if coalesce(retryable, true) and attempt - v_cur.attempt_base < v_cur.max_attempts then
    v_delay := greatest(wf.backoff_delay(v_cur.backoff, attempt - v_cur.attempt_base),
                        least(greatest(coalesce(retry_after_seconds, 0), 0), 86400));
    -- the step gets a new message, due after the delay: the read one goes to the archive, so
    -- that a read message not due again is always a call in flight (wf.queue_counts); a
    -- workflow step's was archived when its child started
    perform pgmq.archive(v_cur.queue, v_cur.msg_id);
    v_cur.msg_id := pgmq.send(v_cur.queue, jsonb_build_object('run_id', run_id, 'step', step), v_delay);
    update wf.steps s
    set status = 'retrying', error = v_error, http_status = fail.http_status, lease_until = null,
        queued_at = clock_timestamp() + make_interval(secs => v_delay), msg_id = v_cur.msg_id,
        child_run_id = null, wake_at = null
    where s.run_id = fail.run_id and s.name = fail.step
    returning s.function into v_stage;
    insert into wf.events (run_id, step, attempt, kind, stage, detail)
    values (run_id, step, attempt, 'retrying', v_stage, v_detail || jsonb_strip_nulls(jsonb_build_object('delay_seconds', v_delay, 'retry_after_seconds', retry_after_seconds)));
    return true;
  end if;

  if v_cur.on_failure = 'continue' then
    perform wf.finish_step(run_id, step, attempt, 'failed', v_cur.queue, v_cur.msg_id, v_cur.run_status,
                           null, v_error, http_status, v_detail);
  else
    perform wf.kill_step(run_id, step, attempt, v_error, http_status);
  end if;
  return true;
end;
$$;

revoke all on function wf.fail(uuid, text, int, text, boolean, int, int) from public;
grant execute on function wf.fail(uuid, text, int, text, boolean, int, int) to wf_worker, wf_admin;
