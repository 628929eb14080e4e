-- wf.run_output: a finished run's output — its definition's output_template rendered over
-- the run (wf.render_paths), or without one an object of its final steps' outputs (the
-- steps no other step depends on). Stored on the run by the transaction that completes it.
create or replace function wf.run_output(p_run_id uuid)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
  v_run record;
  v_steps jsonb;
begin
  select r.id, r.workflow, r.version, r.input, r.correlation_id, d.output_template, d.final_steps into v_run
  from wf.runs r join wf.definitions d on d.workflow = r.workflow and d.version = r.version
  where r.id = p_run_id;
  if v_run.output_template is null then
    return (select coalesce(jsonb_object_agg(s.name, s.output), '{}'::jsonb)
            from wf.steps s where s.run_id = p_run_id and s.name = any (v_run.final_steps));
  end if;
  select jsonb_object_agg(s.name, jsonb_build_object('status', s.status, 'output', s.output, 'error', s.error))
  into v_steps from wf.steps s where s.run_id = p_run_id;
  return wf.render_paths(v_run.output_template,
    v_run.input || jsonb_build_object('input', v_run.input, 'steps', coalesce(v_steps, '{}'::jsonb),
                                      'run', jsonb_build_object('id', v_run.id, 'workflow', v_run.workflow,
                                                                'version', v_run.version,
                                                                'correlation_id', v_run.correlation_id)));
end;
$$;

revoke all on function wf.run_output(uuid) from public;
