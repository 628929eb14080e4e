-- wf.schedule: a recurring run through pg_cron; returns the cron job id
create or replace function wf.schedule(name text, cron text, workflow text, input jsonb default '{}',
                                       priority int default 0)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job_id bigint;
begin
  if name is null or name !~ '^[a-z0-9][a-z0-9_.:-]{0,62}$' then
    perform wf.raise_input_error(format('schedule name must match ^[a-z0-9][a-z0-9_.:-]{0,62}$, got %s', coalesce(name, 'null')));
  end if;
  if cron is null or length(cron) > 100 then
    perform wf.raise_input_error(format('schedule %s: cron must be a cron expression', name));
  end if;
  if input is null or jsonb_typeof(input) <> 'object' then
    perform wf.raise_input_error(format('schedule %s: input must be a JSON object', name));
  end if;
  if priority is null or priority not between -100 and 100 then
    perform wf.raise_input_error(format('schedule %s: priority must be between -100 and 100, got %s',
      name, coalesce(priority::text, 'null')));
  end if;
  if not exists (select 1 from wf.workflows w where w.name = schedule.workflow) then
    raise exception 'schedule %: unknown workflow %', name, coalesce(workflow, 'null') using errcode = 'P0002';
  end if;
  perform wf.require_pg_cron();

  insert into wf.schedules (name, cron, workflow, input, priority) values (name, cron, workflow, input, priority)
  on conflict on constraint schedules_pkey do update
    set cron = excluded.cron, workflow = excluded.workflow, input = excluded.input, priority = excluded.priority;
  execute 'select cron.schedule($1, $2, $3)' into v_job_id
    using 'wf:' || name, cron, format('select wf.fire_schedule(%L)', name);
  return v_job_id;
end;
$$;

revoke all on function wf.schedule(text, text, text, jsonb, int) from public;
grant execute on function wf.schedule(text, text, text, jsonb, int) to wf_admin;
