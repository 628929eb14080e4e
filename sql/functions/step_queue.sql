-- wf.step_queue: the queue a step's messages live in — its stage's queue, or the band queue of
-- its run's priority (`_hi` above 0, `_lo` below; wf.ensure_band created it when the run was
-- enqueued). Inlined by the planner: a plain expression wherever a step's queue is needed.
create or replace function wf.step_queue(queue text, queue_hi text, queue_lo text, priority int)
returns text
language sql
immutable
set search_path = ''
as $$
  select case when priority > 0 then coalesce(queue_hi, queue)
              when priority < 0 then coalesce(queue_lo, queue)
              else queue end
$$;

revoke all on function wf.step_queue(text, text, text, int) from public;
