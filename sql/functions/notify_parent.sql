-- wf.notify_parent: a child run became final; tell its parent step through the internal
-- stage (a message {run_id, step, child} on wf__wf that wf.claim hands to wf.finish_child).
-- A message, not a direct update: the child's transaction holds the child's run lock, and
-- taking the parent's here could deadlock with wf.cancel of the parent, which locks the
-- parent first and then its children. Callers hold the child's run lock.
create or replace function wf.notify_parent(p_run_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_run record;
begin
  select r.parent_run_id, r.parent_step into v_run from wf.runs r where r.id = p_run_id;
  if v_run.parent_run_id is null then
    return;
  end if;
  perform pgmq.send('wf__wf', jsonb_build_object('run_id', v_run.parent_run_id, 'step', v_run.parent_step,
                                                 'child', p_run_id), 0);
  perform pg_notify('wf', 'wf__wf');
end;
$$;

revoke all on function wf.notify_parent(uuid) from public;
