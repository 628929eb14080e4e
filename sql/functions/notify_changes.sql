-- wf.notify_changes: the trigger behind the web dashboard's live updates. After each statement
-- that inserts into wf.events (every change of a run writes one), one pg_notify on channel
-- `wf_changes` whose payload is the distinct run ids of the inserted events, joined by ',', or
-- '*' when they would not fit in a payload (8000 bytes; 7900 leaves room): listeners reload
-- what shows those runs, or everything. Per statement, not per row, so a batch of answers
-- costs one notification; notifications of a transaction are delivered when it commits.
-- The trigger itself (events_notify) is made by sql/access.sql, after every function exists;
-- the @plpgsql_check_options line names the table and transition table for plpgsql_check.
create or replace function wf.notify_changes()
returns trigger
language plpgsql
set search_path = ''
as $$
-- @plpgsql_check_options: relid = wf.events, newtable = new_events
declare
  v_payload text;
begin
  select string_agg(n.run_id::text, ',') into v_payload
  from (select distinct e.run_id from new_events e) n;
  if v_payload is not null then
    perform pg_notify('wf_changes', case when octet_length(v_payload) <= 7900 then v_payload else '*' end);
  end if;
  return null;
end;
$$;

revoke all on function wf.notify_changes() from public;
