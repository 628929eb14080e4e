-- wf.allow_sql_step: let definitions name this function in a `sql` step. The function must
-- take one jsonb and return jsonb; it runs as wf's owner (wf.complete_sql is security
-- definer), in the transaction that records the step's success — so allowing it is the
-- admin's decision, not the definition's. Returns the name definitions use (schema.function).
create or replace function wf.allow_sql_step(fn regprocedure)
returns text
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_proc record;
  v_name text;
begin
  if fn is null then
    perform wf.raise_input_error('fn must name a function, like ''public.mark_done(jsonb)''');
  end if;
  -- (proargtypes is an oidvector, indexed from 0: compared as oid[] it never equals array[…])
  select n.nspname, p.proname, p.pronargs, p.proargtypes[0] as argtype, p.prorettype, p.proretset, p.prokind
  into v_proc
  from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
  where p.oid = fn;
  -- guard: the signature wf.complete_sql calls, schema.function(args jsonb) returns jsonb
  if not found or v_proc.prokind <> 'f' or v_proc.pronargs <> 1 or v_proc.argtype <> 'jsonb'::pg_catalog.regtype
     or v_proc.prorettype <> 'jsonb'::pg_catalog.regtype or v_proc.proretset then
    perform wf.raise_input_error(format('%s cannot be a sql step: it must be a function (args jsonb) returns jsonb', fn));
  end if;
  if v_proc.nspname in ('wf', 'pgmq', 'pg_catalog', 'information_schema', 'cron') then
    perform wf.raise_input_error(format('%s cannot be a sql step: schema %s belongs to the system or to wf', fn, v_proc.nspname));
  end if;
  v_name := v_proc.nspname || '.' || v_proc.proname;
  insert into wf.sql_steps as q (fn, name) values (allow_sql_step.fn, v_name)
  on conflict on constraint sql_steps_pkey do nothing;
  return v_name;
end;
$$;

revoke all on function wf.allow_sql_step(regprocedure) from public;
grant execute on function wf.allow_sql_step(regprocedure) to wf_admin;
