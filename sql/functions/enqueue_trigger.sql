-- wf.enqueue_trigger: row trigger that starts TG_ARGV[0] with the row as input
-- (columns at top level plus _op, _table, _old); the idempotency key is made of
-- table, primary key, operation and transaction, so a replayed statement is one run
create or replace function wf.enqueue_trigger()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_row jsonb;
  v_input jsonb;
  v_key text;
  v_same_key int;
begin
  if tg_nargs < 1 or tg_argv[0] is null then
    raise exception 'wf.enqueue_trigger on %.%: pass the workflow name, e.g. execute function wf.enqueue_trigger(''my-workflow'')',
      tg_table_schema, tg_table_name using errcode = '22023';
  end if;
  if tg_level <> 'ROW' then
    raise exception 'wf.enqueue_trigger on %.%: must be a FOR EACH ROW trigger', tg_table_schema, tg_table_name
      using errcode = '22023';
  end if;
  v_row := case when tg_op = 'DELETE' then to_jsonb(old) else to_jsonb(new) end;

  select string_agg(v_row ->> a.attname, ',' order by k.ord) into v_key
  from pg_catalog.pg_index i
  cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
  join pg_catalog.pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
  where i.indrelid = tg_relid and i.indisprimary;

  v_input := v_row || jsonb_build_object('_op', tg_op, '_table', tg_table_schema || '.' || tg_table_name,
                                          '_old', case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) end);
  v_key := format('%s.%s:%s:%s:%s', tg_table_schema, tg_table_name, coalesce(v_key, md5(v_row::text)), tg_op,
                  txid_current());

  -- guard: the same row changed again in the same transaction is a new run, not a key
  -- conflict that would abort the user's statement
  select count(*) into v_same_key
  from wf.runs r
  where r.workflow = tg_argv[0] and (r.idempotency_key = v_key or left(r.idempotency_key, length(v_key) + 1) = v_key || ':')
    and r.input is distinct from v_input;
  if v_same_key > 0 then
    v_key := v_key || ':' || (v_same_key + 1);
  end if;

  perform wf.enqueue(tg_argv[0], v_input, v_key);
  return case when tg_op = 'DELETE' then old else new end;
end;
$$;

revoke all on function wf.enqueue_trigger() from public;
grant execute on function wf.enqueue_trigger() to wf_admin;
