-- wf.dead_letter_counts: how many dead steps each stage (function) has, counted in the wf_dlq
-- queue (a dead step's message stays there until wf.retry or retention takes it out), so that
-- wf.stage_health need not read every step. Security definer: readers have no access to pgmq.
create or replace function wf.dead_letter_counts()
returns table (function text, dead bigint)
language sql
stable
security definer
set search_path = ''
as $$
  select m.message ->> 'function', count(*)
  from pgmq.q_wf_dlq m
  where m.message ? 'function'
  group by 1
$$;

revoke all on function wf.dead_letter_counts() from public;
grant execute on function wf.dead_letter_counts() to wf_reader, wf_admin;
