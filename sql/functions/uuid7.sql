-- wf.uuid7: a time-ordered UUID (RFC 9562 version 7) for run ids, so new runs,
-- their steps and their events land on the right edge of each index instead of
-- touching (and, after a checkpoint, logging whole) pages all over it
create or replace function wf.uuid7()
returns uuid
language sql
volatile
set search_path = ''
as $$
  select encode(set_byte(set_byte(overlay(r.b placing t.ms from 1 for 6),
                                  6, (get_byte(r.b, 6) & 15) | 112),   -- version 7
                         8, (get_byte(r.b, 8) & 63) | 128),            -- variant 10
                'hex')::uuid
  from (select uuid_send(gen_random_uuid()) as b) r,
       (select substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3) as ms) t
$$;

revoke all on function wf.uuid7() from public;
