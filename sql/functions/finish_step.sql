-- wf.finish_step: close a step's running attempt (succeeded, failed or skipped) one by one
-- (wf.complete, wf.fail, wf.skip), archive its message and move the run on. wf.complete_batch
-- does the same for a batch, set-based.
create or replace function wf.finish_step(p_run_id uuid, p_step text, p_attempt int, p_status text, p_queue text,
                               p_msg_id bigint, p_run_status text, p_output jsonb, p_error text,
                               p_http_status int, p_detail jsonb)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_open boolean := p_run_status in ('scheduled', 'pending', 'running');
  v_queued jsonb;
  v_map_step text;
  v_compensates text;
  v_stage text;
begin
  perform pgmq.archive(p_queue, p_msg_id);
  update wf.steps s
  set status = p_status, output = p_output, error = p_error, http_status = p_http_status,
      finished_at = clock_timestamp(), lease_until = null
  where s.run_id = p_run_id and s.name = p_step
  returning s.map_step, s.compensates, s.function into v_map_step, v_compensates, v_stage;
  if v_open then
    v_queued := wf.advance(p_run_id);
  end if;
  insert into wf.events (run_id, step, attempt, kind, stage, detail)
  values (p_run_id, p_step, p_attempt, p_status, v_stage,
          case when v_queued <> '{}' then coalesce(p_detail, '{}') || jsonb_build_object('queued', v_queued)
               else p_detail end);
  -- a run that just queued a step is not done
  if v_open and v_queued = '{}' then
    perform wf.close_if_done(p_run_id);
  end if;
  -- an item of a map step: the next item starts, or the map step ends
  if v_map_step is not null then
    perform wf.map_progress(p_run_id, v_map_step);
  end if;
  -- a compensation: the next one starts, or the run is failed
  if v_compensates is not null then
    perform wf.compensate_progress(p_run_id);
  end if;
end;
$$;

revoke all on function wf.finish_step(uuid, text, int, text, text, bigint, text, jsonb, text, int, jsonb) from public;
