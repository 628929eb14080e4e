-- wf.signal: send a named signal to a run. The first step waiting for that name takes the
-- payload as its output and the run goes on; with none waiting yet, the signal is kept
-- until a step waits for it. False when the run is already final.
create or replace function wf.signal(run_id uuid, name text, payload jsonb default '{}')
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_status text;
  v_step record;
  v_max_bytes int := (select st.value::int from wf.settings st where st.key = 'max_input_bytes');
  v_signal_id bigint;
begin
  -- guard: arguments
  if run_id is null then
    perform wf.raise_input_error('run_id must not be null');
  end if;
  if name is null or length(name) not between 1 and 100 then
    perform wf.raise_input_error(format('run %s: signal name must be 1 to 100 characters, got %s',
      run_id, coalesce(length(name)::text || ' characters', 'null')));
  end if;
  if payload is null then
    perform wf.raise_input_error(format('run %s: signal %s: payload must be JSON, not null', run_id, name));
  end if;
  if octet_length(payload::text) > v_max_bytes then
    perform wf.raise_input_error(format('run %s: signal %s: payload is %s bytes, more than the %s allowed (max_input_bytes)',
      run_id, name, octet_length(payload::text), v_max_bytes));
  end if;

  v_status := wf.lock_run(run_id);
  if v_status in ('completed', 'failed', 'cancelled', 'compensation_failed') then
    return false;
  end if;

  insert into wf.signals (run_id, name, payload) values (run_id, name, payload) returning id into v_signal_id;
  select s.name, s.attempt into v_step
  from wf.steps s
  join wf.runs r on r.id = s.run_id
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
  where s.run_id = signal.run_id and s.status = 'running' and d.kind = 'wait_for' and d.action = signal.name
  order by d.position limit 1;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (run_id, v_step.name, v_step.attempt, 'signal_received',
          jsonb_build_object('signal', name, 'kept', v_step.name is null));
  if v_step.name is not null then
    update wf.signals g set consumed_by = v_step.name, consumed_at = clock_timestamp() where g.id = v_signal_id;
    update wf.steps s set wake_at = null where s.run_id = signal.run_id and s.name = v_step.name;
    perform wf.complete(run_id, v_step.name, v_step.attempt, payload);
  end if;
  return true;
end;
$$;

revoke all on function wf.signal(uuid, text, jsonb) from public;
grant execute on function wf.signal(uuid, text, jsonb) to wf_admin;
