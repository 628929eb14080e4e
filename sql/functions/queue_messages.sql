-- wf.queue_messages: the messages waiting in the queues of wf's stages (every priority band)
-- that were due (visible) before p_due_before — a step's message is due when the step is
-- (queued_at) and, once claimed, when its lease ends (lease_until) — or with p_read_only only
-- those read at least once (calls in flight, lost ones, retries waiting out their backoff),
-- with the run and step each one is for.
-- The queues hold only the work not done yet, so wf.stuck, wf.stage_health and wf.tick find the
-- steps they look for here and then each one by its key, never by reading every step.
-- Security definer: readers have no access to schema pgmq.
create or replace function wf.queue_messages(p_due_before timestamptz, p_read_only boolean default false)
returns table (stage text, queue text, msg_id bigint, read_ct int, enqueued_at timestamptz, vt timestamptz,
               run_id uuid, step text)
language plpgsql
stable
security definer
-- few: what waits or runs now (the planner then looks each step up by its key)
rows 100
set search_path = ''
as $$
declare
  v_band record;
begin
  -- the rows come from the dynamic queries below (plpgsql_check cannot see that they set these)
  stage := null; queue := null; msg_id := null; read_ct := null; enqueued_at := null; vt := null;
  run_id := null; step := null;
  for v_band in
    select q.stage as name, q.queue from wf.stage_queues() q
  loop
    -- guard: a queue dropped behind wf's back (a restore without pgmq's tables) lists nothing
    continue when to_regclass(format('pgmq.%I', 'q_' || v_band.queue)) is null;
    return query execute format(
      'select $1, $2, m.msg_id, m.read_ct, m.enqueued_at, m.vt,
              case when m.message ->> ''run_id'' ~ ''^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$''
                   then (m.message ->> ''run_id'')::uuid end,
              m.message ->> ''step''
       from pgmq.%I m
       where m.vt < $3 and (not $4 or m.read_ct > 0)', 'q_' || v_band.queue)
      using v_band.name, v_band.queue, p_due_before, p_read_only;
  end loop;
end;
$$;

revoke all on function wf.queue_messages(timestamptz, boolean) from public;
grant execute on function wf.queue_messages(timestamptz, boolean) to wf_reader, wf_admin;
