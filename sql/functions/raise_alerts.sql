-- wf.raise_alerts: wf.tick's alert pass — counts the rows of wf.alerts and, when the setting
-- alert_workflow names a workflow, starts it once per alert and hour (idempotency key
-- alert:<key>:<hour>, input the alert row, correlation id the alert's key), so a team routes
-- alerts to Slack or a pager through an edge function. An alert workflow that does not exist
-- (or is inactive) is reported once in the result (and wf.alerts shows it), never raised: the
-- minute job must go on. Returns {open, started[, alert_workflow_missing][, not_started]}.
create or replace function wf.raise_alerts()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_workflow text := wf.setting('alert_workflow') #>> '{}';
  v_hour text := to_char(date_trunc('hour', clock_timestamp() at time zone 'utc'), 'YYYY-MM-DD"T"HH24"Z"');
  v_alerts jsonb[] := '{}'::jsonb[];
  v_alert jsonb;
  v_key text;
  v_open int := 0;
  v_started int := 0;
  v_missing text;
  v_not_started jsonb := '[]'::jsonb;
begin
  for v_alert in select to_jsonb(a) from wf.alerts a loop
    v_open := v_open + 1;
    if v_alert ->> 'kind' = 'alert_workflow_missing' then
      v_missing := v_alert ->> 'message';
    else
      v_alerts := v_alerts || v_alert;
    end if;
  end loop;

  -- guard: no alert workflow set, or one that cannot start (reported once, never raised)
  if v_workflow is null or v_missing is not null or cardinality(v_alerts) = 0 then
    return jsonb_strip_nulls(jsonb_build_object('open', v_open, 'started', 0, 'alert_workflow_missing', v_missing));
  end if;
  -- guard: one tick at a time starts alert runs (another holds it: it starts them)
  if not pg_try_advisory_xact_lock(7004, 0) then
    return jsonb_build_object('open', v_open, 'started', 0);
  end if;

  foreach v_alert in array v_alerts loop
    v_key := 'alert:' || (v_alert ->> 'key') || ':' || v_hour;
    -- guard: once per alert and hour (checked first: the alert's value moves within the hour,
    -- and wf.enqueue refuses a known key with a different input)
    continue when exists (select 1 from wf.runs r where r.workflow = v_workflow and r.idempotency_key = v_key);
    begin
      perform wf.enqueue(v_workflow, v_alert, v_key, null, v_alert ->> 'key');
      v_started := v_started + 1;
    exception
      -- the workflow refuses this input (required fields, input_schema), or went away since
      when invalid_parameter_value or program_limit_exceeded or no_data_found or object_not_in_prerequisite_state then
        v_not_started := v_not_started || jsonb_build_object('key', v_alert ->> 'key', 'error', sqlerrm);
    end;
  end loop;

  return jsonb_build_object('open', v_open, 'started', v_started)
         || case when jsonb_array_length(v_not_started) > 0 then jsonb_build_object('not_started', v_not_started)
                 else '{}'::jsonb end;
end;
$$;

revoke all on function wf.raise_alerts() from public;
grant execute on function wf.raise_alerts() to wf_worker, wf_admin;
