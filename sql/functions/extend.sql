-- wf.extend: heartbeat — keep the running attempt's message invisible for `seconds` more
create or replace function wf.extend(run_id uuid, step text, attempt int, seconds int)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cur record;
begin
  if seconds is null or seconds not between 1 and 43200 then
    perform wf.raise_input_error(format('step %s of run %s: seconds must be between 1 and 43200, got %s',
      step, run_id, coalesce(seconds::text, 'null')));
  end if;
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'extend');
  if not found then
    return false;
  end if;
  perform pgmq.set_vt(v_cur.queue, v_cur.msg_id, seconds);
  update wf.steps s set lease_until = clock_timestamp() + make_interval(secs => seconds)
  where s.run_id = extend.run_id and s.name = extend.step;
  return true;
end;
$$;

revoke all on function wf.extend(uuid, text, int, int) from public;
grant execute on function wf.extend(uuid, text, int, int) to wf_worker, wf_admin;
