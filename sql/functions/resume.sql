-- wf.resume: a paused run goes on where it stopped — every step whose dependencies became
-- final meanwhile is queued now, and a run with nothing left completes. False when the run
-- is not paused.
create or replace function wf.resume(run_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_run record;
  v_queued jsonb;
begin
  if wf.lock_run(run_id) <> 'paused' then
    return false;
  end if;
  select r.started_at, r.run_at, r.held into v_run from wf.runs r where r.id = resume.run_id;
  update wf.runs r
  set status = case when v_run.started_at is not null then 'running'
                    when v_run.run_at > clock_timestamp() then 'scheduled' else 'pending' end
  where r.id = resume.run_id;
  -- guard: a run waiting for its concurrency key goes on waiting (wf.release_key starts it)
  v_queued := case when v_run.held then '{}'::jsonb else wf.advance(run_id) end;
  insert into wf.events (run_id, step, attempt, kind, detail)
  values (run_id, null, null, 'run_resumed', jsonb_build_object('queued', v_queued));
  if v_queued = '{}' and not v_run.held then
    perform wf.close_if_done(run_id);
  end if;
  return true;
end;
$$;

revoke all on function wf.resume(uuid) from public;
grant execute on function wf.resume(uuid) to wf_admin;
