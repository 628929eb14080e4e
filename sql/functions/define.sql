-- wf.define: validate and store a definition; identical → the current version, changed → n+1
create or replace function wf.define(definition jsonb)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_normal jsonb := wf.normalize_definition(definition);
  v_name text := definition ->> 'name';
  v_checksum text := md5(definition::text);
  v_version int;
  v_current record;
  v_stage record;
  v_ref record;
  v_cycle text[];
begin
  perform pg_advisory_xact_lock(hashtext('wf.define'), hashtext(v_name));

  select w.current_version, d.checksum into v_current
  from wf.workflows w join wf.definitions d on d.workflow = w.name and d.version = w.current_version
  where w.name = v_name;
  if found and v_current.checksum = v_checksum then
    return v_current.current_version;
  end if;

  -- guard: a workflow step names a defined workflow, and no chain of workflow steps leads
  -- back to this one; a sql step names a function an admin allowed (wf.allow_sql_step)
  for v_ref in
    select s ->> 'name' as step, s ->> 'kind' as kind, s ->> 'action' as target
    from jsonb_array_elements(v_normal -> 'steps') s where s ->> 'kind' in ('workflow', 'sql')
  loop
    if v_ref.kind = 'sql' then
      if not exists (select 1 from wf.sql_steps q where q.name = v_ref.target) then
        perform wf.raise_input_error(format('workflow %s: step %s: sql function %s is not allowed as a step (an admin allows it with select wf.allow_sql_step(''%s(jsonb)''))',
          v_name, v_ref.step, v_ref.target, v_ref.target));
      end if;
    elsif v_ref.target = v_name then
      perform wf.raise_input_error(format('workflow %s: step %s: a workflow cannot run itself as a step', v_name, v_ref.step));
    elsif not exists (select 1 from wf.workflows w where w.name = v_ref.target) then
      perform wf.raise_input_error(format('workflow %s: step %s: workflow %s is not defined (define it first)',
        v_name, v_ref.step, v_ref.target));
    else
      with recursive reach(workflow, path) as (
        select v_ref.target, array[v_name, v_ref.target]
        union all
        select ds.action, reach.path || ds.action
        from reach
        join wf.workflows w on w.name = reach.workflow
        join wf.definition_steps ds on ds.workflow = w.name and ds.version = w.current_version and ds.kind = 'workflow'
        where reach.workflow <> v_name and not ds.action = any (reach.path[2:])
      )
      select reach.path into v_cycle from reach where reach.workflow = v_name limit 1;
      if v_cycle is not null then
        perform wf.raise_input_error(format('workflow %s: step %s: workflows would run each other in a cycle: %s',
          v_name, v_ref.step, array_to_string(v_cycle, ' → ')));
      end if;
    end if;
  end loop;

  -- stages: one per function, each with its queue; two names must not share a queue
  for v_stage in
    select s ->> 'function' as name, max((s ->> 'visibility_timeout')::int) as vt
    from jsonb_array_elements(v_normal -> 'steps') s group by 1
  loop
    -- (each by its unique index: a stage's own queue or one of its priority bands)
    if exists (select 1 from wf.stages st where st.queue = wf.queue_name(v_stage.name) and st.name <> v_stage.name)
       or exists (select 1 from wf.stages st where st.queue_hi = wf.queue_name(v_stage.name))
       or exists (select 1 from wf.stages st where st.queue_lo = wf.queue_name(v_stage.name)) then
      perform wf.raise_input_error(format('workflow %s: function %s would share queue %s with function %s',
        v_name, v_stage.name, wf.queue_name(v_stage.name),
        (select st.name from wf.stages st where st.queue = wf.queue_name(v_stage.name))));
    end if;
    insert into wf.stages (name, queue, visibility_timeout)
    values (v_stage.name, wf.queue_name(v_stage.name), v_stage.vt)
    on conflict (name) do update set visibility_timeout = greatest(wf.stages.visibility_timeout, excluded.visibility_timeout);
    perform pgmq.create(wf.queue_name(v_stage.name));
  end loop;

  v_version := coalesce((select max(d.version) from wf.definitions d where d.workflow = v_name), 0) + 1;
  insert into wf.definitions (workflow, version, definition, checksum, input_vars, output_template, final_steps)
  values (v_name, v_version, definition, v_checksum,
          array(select jsonb_array_elements_text(v_normal -> 'input_vars')), nullif(definition -> 'output_template', 'null'),
          array(select s ->> 'name' from jsonb_array_elements(v_normal -> 'steps') s
                where s ->> 'compensates' is null and not exists (select 1 from jsonb_array_elements(v_normal -> 'steps') o
                                  where (o -> 'depends_on') ? (s ->> 'name'))
                order by (s ->> 'position')::int));
  insert into wf.definition_steps
  select (jsonb_populate_record(null::wf.definition_steps, s || jsonb_build_object('version', v_version))).*
  from jsonb_array_elements(v_normal -> 'steps') s;
  insert into wf.workflows (name, current_version) values (v_name, v_version)
  on conflict (name) do update set current_version = excluded.current_version, updated_at = now();
  return v_version;
end;
$$;

revoke all on function wf.define(jsonb) from public;
grant execute on function wf.define(jsonb) to wf_admin;
