-- wf.release_key: while fewer runs than the limit hold a workflow's concurrency key value, the
-- oldest run waiting for it starts (first in first out): its steps are queued in this same
-- transaction. A held run that was cancelled meanwhile is final and counts for nothing.
create or replace function wf.release_key(p_workflow text, p_key text)
returns int
language plpgsql
set search_path = ''
as $$
declare
  v_active int;
  v_limit int;
  v_next record;
  v_started int := 0;
  v_queued jsonb;
begin
  perform pg_advisory_xact_lock(7002, hashtext(p_workflow || '/' || coalesce(p_key, '')));
  loop
    select count(*) filter (where not r.held), min(r.concurrency_limit) into v_active, v_limit
    from wf.runs r
    where r.workflow = p_workflow and r.concurrency_limit is not null and r.concurrency_key is not distinct from p_key
      and r.status not in ('completed', 'failed', 'cancelled', 'compensation_failed');
    exit when v_limit is null or v_active >= v_limit;
    select r.id into v_next
    from wf.runs r
    where r.workflow = p_workflow and r.concurrency_limit is not null and r.concurrency_key is not distinct from p_key
      and r.held and r.status not in ('completed', 'failed', 'cancelled', 'compensation_failed')
    order by r.created_at, r.id
    limit 1;
    exit when not found;
    perform pg_advisory_xact_lock(7001, hashtext(v_next.id::text));
    update wf.runs r set held = false where r.id = v_next.id;
    v_queued := wf.advance(v_next.id);
    insert into wf.events (run_id, step, attempt, kind, detail)
    values (v_next.id, null, null, 'run_released', jsonb_build_object('key', p_key, 'queued', v_queued));
    v_started := v_started + 1;
  end loop;
  return v_started;
end;
$$;

revoke all on function wf.release_key(text, text) from public;
