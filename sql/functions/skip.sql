-- wf.skip: the step's `when` rendered false (or the consumer decided not to call)
create or replace function wf.skip(run_id uuid, step text, attempt int, reason text default null)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cur record;
begin
  select * into v_cur from wf.current_attempt(run_id, step, attempt, 'skip');
  if not found then
    return false;
  end if;
  perform wf.finish_step(run_id, step, attempt, 'skipped', v_cur.queue, v_cur.msg_id, v_cur.run_status,
    null, null, null, jsonb_strip_nulls(jsonb_build_object('reason', left(reason, 4000))));
  return true;
end;
$$;

revoke all on function wf.skip(uuid, text, int, text) from public;
grant execute on function wf.skip(uuid, text, int, text) to wf_worker, wf_admin;
