-- wf.run_ended: a run became final (completed, failed, cancelled, compensation_failed). A child
-- run's parent step is told through the internal stage — a message {run_id, step, child} on
-- wf__wf that wf.claim hands to wf.finish_child; a message, not a direct update, because taking
-- the parent's lock here could deadlock with wf.cancel of the parent, which locks the parent and
-- then its children. A run waiting for this run's concurrency key may start (wf.release_key).
-- Callers hold the run's lock.
create or replace function wf.run_ended(p_run_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_run record;
begin
  select r.workflow, r.parent_run_id, r.parent_step, r.concurrency_key, r.concurrency_limit into v_run
  from wf.runs r where r.id = p_run_id;
  if v_run.parent_run_id is not null then
    perform pgmq.send('wf__wf', jsonb_build_object('run_id', v_run.parent_run_id, 'step', v_run.parent_step,
                                                   'child', p_run_id), 0);
    perform pg_notify('wf', 'wf__wf');
  end if;
  if v_run.concurrency_limit is not null then
    perform wf.release_key(v_run.workflow, v_run.concurrency_key);
  end if;
end;
$$;

revoke all on function wf.run_ended(uuid) from public;
