-- wf.check_setting: the trigger (settings_check, made by sql/access.sql) that refuses a setting
-- out of its range, before it is stored, with SQLSTATE 22023 and a message naming the setting and
-- what it takes: operators change wf.settings with plain update statements, and a bad value
-- would otherwise break wf.tick, wf.enqueue or the views every minute from then on. A key
-- without a range here passes (a later migration adds its setting before the installer
-- re-applies this file); tests/sql/test_alerts.py checks that every setting has one.
create or replace function wf.check_setting()
returns trigger
language plpgsql
set search_path = ''
as $$
-- @plpgsql_check_options: relid = wf.settings
declare
  v_min numeric;
  v_max numeric;
  v_whole boolean := true;
  v_number numeric;
begin
  case new.key
    when 'retention_days' then v_min := 0.0001; v_max := 3650; v_whole := false;  -- a fraction: minutes (soak tests)
    when 'retention_budget_ms' then v_min := 10; v_max := 60000;
    when 'stuck_after_seconds' then v_min := 1; v_max := 604800;
    when 'max_input_bytes', 'max_output_bytes' then v_min := 1; v_max := 104857600;
    when 'alert_queue_depth' then v_min := 1; v_max := 1000000000;
    when 'alert_failure_rate' then v_min := 0.001; v_max := 1; v_whole := false;
    when 'alert_failure_min_calls' then v_min := 1; v_max := 1000000;
    when 'alert_call_ms' then v_min := 1; v_max := 86400000;
    when 'alert_dlq_growth' then v_min := 0; v_max := 1000000000;
    when 'alert_workflow' then
      -- guard: null (no alert workflow) or a workflow's name; that it exists is checked when it is used
      if jsonb_typeof(new.value) <> 'null'
         and (jsonb_typeof(new.value) <> 'string' or (new.value #>> '{}') !~ '^[a-z0-9][a-z0-9_.-]{0,62}$') then
        perform wf.raise_input_error(format('setting alert_workflow must be null or a workflow name (^[a-z0-9][a-z0-9_.-]{0,62}$), got %s',
          new.value));
      end if;
      return new;
    else
      return new;
  end case;

  -- guard: a number (a whole one unless the setting says otherwise) within the range
  if jsonb_typeof(new.value) = 'number' then
    v_number := (new.value #>> '{}')::numeric;
  end if;
  if v_number is null or v_number not between v_min and v_max or (v_whole and v_number <> trunc(v_number)) then
    perform wf.raise_input_error(format('setting %s must be %s from %s to %s, got %s',
      new.key, case when v_whole then 'a whole number' else 'a number' end, v_min, v_max, new.value));
  end if;
  return new;
end;
$$;

revoke all on function wf.check_setting() from public;
