-- wf.lock_run: what every action on one run by an operator or app does first (cancel, retry,
-- pause, resume, signal): refuse a null id (22023), take the run's lock (the one claims and
-- answers take, so the action and a worker never interleave), and return the run's status —
-- or raise P0002 naming an unknown run.
create or replace function wf.lock_run(p_run_id uuid)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_status text;
begin
  if p_run_id is null then
    perform wf.raise_input_error('run_id must not be null');
  end if;
  perform pg_advisory_xact_lock(7001, hashtext(p_run_id::text));
  select r.status into v_status from wf.runs r where r.id = p_run_id;
  if not found then
    raise exception 'unknown run %', p_run_id using errcode = 'P0002';
  end if;
  return v_status;
end;
$$;

revoke all on function wf.lock_run(uuid) from public;
