-- wf.fire_schedule: what pg_cron runs; the idempotency key is the schedule name
-- and the minute, so a firing repeated within its minute starts one run
create or replace function wf.fire_schedule(name text)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_schedule record;
begin
  select s.workflow, s.input, s.priority into v_schedule from wf.schedules s where s.name = fire_schedule.name;
  if not found then
    raise exception 'unknown schedule %', name using errcode = 'P0002';
  end if;
  return wf.enqueue(v_schedule.workflow, v_schedule.input,
    format('schedule:%s:%s', name, to_char(date_trunc('minute', now()) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"')),
    null, null, v_schedule.priority);
end;
$$;

revoke all on function wf.fire_schedule(text) from public;
grant execute on function wf.fire_schedule(text) to wf_admin;
