-- wf 0005: maintenance (wf.tick), recurring runs (pg_cron) and the enqueue trigger.

-- wf.tick: the minute job — promotes due scheduled runs, dead-letters poison
-- steps (lease gone, attempts used up: nobody will answer), marks stuck steps
-- once, and deletes finished runs past retention. Returns what it did.
create function wf.tick()
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_promoted int := 0;
  v_dead int := 0;
  v_stuck int := 0;
  v_deleted int := 0;
  v_step record;
  v_stuck_after interval := make_interval(secs => (wf.setting('stuck_after_seconds'))::int);
begin
  with due as (
    update wf.runs r set status = 'pending'
    where r.status = 'scheduled' and r.run_at <= clock_timestamp()
    returning r.id
  ), logged as (
    insert into wf.events (run_id, kind) select due.id, 'run_due' from due returning 1
  )
  select count(*) into v_promoted from logged;

  for v_step in
    select s.run_id, s.name, s.attempt, d.max_attempts
    from wf.steps s
    join wf.runs r on r.id = s.run_id
    join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version and d.name = s.name
    where s.status = 'running' and s.lease_until < clock_timestamp()
      and s.attempt - s.attempt_base >= d.max_attempts
  loop
    perform pg_advisory_xact_lock(7001, hashtext(v_step.run_id::text));
    -- guard: the attempt answered while we waited for the lock
    continue when not exists (select 1 from wf.steps s
                              where s.run_id = v_step.run_id and s.name = v_step.name and s.status = 'running'
                                and s.attempt = v_step.attempt and s.lease_until < clock_timestamp());
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (v_step.run_id, v_step.name, v_step.attempt, 'attempt_lost', '{"by": "tick"}');
    perform wf.kill_step(v_step.run_id, v_step.name, v_step.attempt,
      format('step %s of run %s: no answer after %s attempts', v_step.name, v_step.run_id, v_step.max_attempts), null);
    v_dead := v_dead + 1;
  end loop;

  with marked as (
    update wf.steps s set stuck_at = clock_timestamp()
    where s.stuck_at is null
      and ((s.status in ('queued', 'retrying') and s.queued_at < clock_timestamp() - v_stuck_after)
           or (s.status = 'running' and s.lease_until < clock_timestamp() - v_stuck_after))
    returning s.run_id, s.name, s.attempt, s.status
  ), logged as (
    insert into wf.events (run_id, step, attempt, kind, detail)
    select m.run_id, m.name, m.attempt, 'stuck', jsonb_build_object('status', m.status) from marked m
    returning 1
  )
  select count(*) into v_stuck from logged;

  with old as (
    select r.id from wf.runs r
    where r.status in ('completed', 'failed', 'cancelled')
      and r.finished_at < clock_timestamp() - make_interval(days => (wf.setting('retention_days'))::int)
    limit 10000
  ), gone as (
    delete from wf.runs r using old where r.id = old.id returning r.id
  ), history as (
    delete from wf.events e using gone where e.run_id = gone.id
  )
  select count(*) into v_deleted from gone;

  return jsonb_build_object('promoted', v_promoted, 'dead_lettered', v_dead, 'stuck', v_stuck, 'deleted_runs', v_deleted);
end;
$$;

-- wf.require_pg_cron: recurring runs need pg_cron in this database
create function wf.require_pg_cron()
returns void
language plpgsql
set search_path = ''
as $$
begin
  if not exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
    raise exception 'pg_cron is not installed in database %: recurring runs need it (create extension pg_cron)',
      current_database() using errcode = '55000';
  end if;
end;
$$;

-- wf.schedule: a recurring run through pg_cron; returns the cron job id
create function wf.schedule(name text, cron text, workflow text, input jsonb default '{}')
returns bigint
language plpgsql
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
  if not exists (select 1 from wf.workflows w where w.name = schedule.workflow) then
    raise exception 'schedule %: unknown workflow %', name, coalesce(workflow, 'null') using errcode = 'P0002';
  end if;
  perform wf.require_pg_cron();

  insert into wf.schedules (name, cron, workflow, input) values (name, cron, workflow, input)
  on conflict on constraint schedules_pkey do update
    set cron = excluded.cron, workflow = excluded.workflow, input = excluded.input;
  execute 'select cron.schedule($1, $2, $3)' into v_job_id
    using 'wf:' || name, cron, format('select wf.fire_schedule(%L)', name);
  return v_job_id;
end;
$$;

-- wf.unschedule: stop a recurring run; false when there was none
create function wf.unschedule(name text)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  delete from wf.schedules s where s.name = unschedule.name;
  if not found then
    return false;
  end if;
  perform wf.require_pg_cron();
  execute 'select cron.unschedule(jobid) from cron.job where jobname = $1' using 'wf:' || name;
  return true;
end;
$$;

-- wf.fire_schedule: what pg_cron runs; the idempotency key is the schedule name
-- and the minute, so a firing repeated within its minute starts one run
create function wf.fire_schedule(name text)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_schedule record;
begin
  select s.workflow, s.input into v_schedule from wf.schedules s where s.name = fire_schedule.name;
  if not found then
    raise exception 'unknown schedule %', name using errcode = 'P0002';
  end if;
  return wf.enqueue(v_schedule.workflow, v_schedule.input,
    format('schedule:%s:%s', name, to_char(date_trunc('minute', now()) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI"Z"')));
end;
$$;

-- wf.enqueue_trigger: row trigger that starts TG_ARGV[0] with the row as input
-- (columns at top level plus _op, _table, _old); the idempotency key is made of
-- table, primary key, operation and transaction, so a replayed statement is one run
create function wf.enqueue_trigger()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_row jsonb;
  v_input jsonb;
  v_key text;
  v_same_key int;
begin
  if tg_nargs < 1 or tg_argv[0] is null then
    raise exception 'wf.enqueue_trigger on %.%: pass the workflow name, e.g. execute function wf.enqueue_trigger(''my-workflow'')',
      tg_table_schema, tg_table_name using errcode = '22023';
  end if;
  if tg_level <> 'ROW' then
    raise exception 'wf.enqueue_trigger on %.%: must be a FOR EACH ROW trigger', tg_table_schema, tg_table_name
      using errcode = '22023';
  end if;
  v_row := case when tg_op = 'DELETE' then to_jsonb(old) else to_jsonb(new) end;

  select string_agg(v_row ->> a.attname, ',' order by k.ord) into v_key
  from pg_catalog.pg_index i
  cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
  join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
  where i.indrelid = tg_relid and i.indisprimary;

  v_input := v_row || jsonb_build_object('_op', tg_op, '_table', tg_table_schema || '.' || tg_table_name,
                                          '_old', case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) end);
  v_key := format('%s.%s:%s:%s:%s', tg_table_schema, tg_table_name, coalesce(v_key, md5(v_row::text)), tg_op,
                  txid_current());

  -- guard: the same row changed again in the same transaction is a new run, not a key
  -- conflict that would abort the user's statement
  select count(*) into v_same_key
  from wf.runs r
  where r.workflow = tg_argv[0] and (r.idempotency_key = v_key or left(r.idempotency_key, length(v_key) + 1) = v_key || ':')
    and r.input is distinct from v_input;
  if v_same_key > 0 then
    v_key := v_key || ':' || (v_same_key + 1);
  end if;

  perform wf.enqueue(tg_argv[0], v_input, v_key);
  return case when tg_op = 'DELETE' then old else new end;
end;
$$;
