-- wf.queue_counts: per stage (all its priority bands), the messages in its queues (depth), the
-- age of the oldest, how many are due now (visible: waiting for a worker) and how many are
-- calls in flight (read by a claim, their lease not over). The queues hold only the work not
-- done, and a read message that is not due again is always a call someone is making: a retry
-- waiting out its backoff, a deferred step and a wait's timer get a new, unread message
-- (wf.fail, wf.defer, wf.start_wait), a step waiting for a signal or a child run has none. So
-- wf.stage_health, the tick's samples and the KEDA query count without looking up any step:
-- the cost follows the messages waiting, not the runs kept.
-- Security definer: readers have no access to schema pgmq.
create or replace function wf.queue_counts()
returns table (stage text, depth bigint, oldest_age_sec int, due bigint, in_flight bigint)
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_stage text;
  v_queues text[];
  v_queue text;
  v_now timestamptz := clock_timestamp();
  v_depth bigint;
  v_oldest timestamptz;
  v_due bigint;
  v_flight bigint;
begin
  for v_stage, v_queues in
    select q.stage, array_agg(q.queue order by q.band desc) from wf.stage_queues() q group by q.stage order by q.stage
  loop
    stage := v_stage; depth := 0; oldest_age_sec := null; due := 0; in_flight := 0;
    foreach v_queue in array v_queues loop
      -- guard: a queue dropped behind wf's back (a restore without pgmq's tables) counts nothing
      continue when to_regclass(format('pgmq.%I', 'q_' || v_queue)) is null;
      execute format('select count(*), min(m.enqueued_at), count(*) filter (where m.vt <= $1),
                             count(*) filter (where m.vt > $1 and m.read_ct > 0)
                      from pgmq.%I m', 'q_' || v_queue)
        into v_depth, v_oldest, v_due, v_flight
        using v_now;
      depth := depth + v_depth;
      due := due + v_due;
      in_flight := in_flight + v_flight;
      oldest_age_sec := greatest(oldest_age_sec, extract(epoch from v_now - v_oldest)::int);
    end loop;
    return next;
  end loop;
end;
$$;

revoke all on function wf.queue_counts() from public;
grant execute on function wf.queue_counts() to wf_reader, wf_admin;
