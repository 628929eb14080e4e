-- wf.auth_uid: the signed-in user of this transaction (Supabase's auth.uid()), else null
create or replace function wf.auth_uid()
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  v_uid uuid;
  v_fn regprocedure;
begin
  -- guard: no JWT claims (plain SQL, pg_cron, the worker): no owner, no catalog lookup
  if nullif(current_setting('request.jwt.claims', true), '') is null
     and nullif(current_setting('request.jwt.claim.sub', true), '') is null then
    return null;
  end if;
  -- guard: Supabase Auth may be absent, or installed after wf; dynamic SQL so that this
  -- function compiles (and passes plpgsql_check) where schema auth does not exist
  v_fn := pg_catalog.to_regprocedure('auth.uid()');
  if v_fn is null then
    return null;
  end if;
  execute format('select %s', v_fn) into v_uid;  -- regprocedure prints as auth.uid()
  return v_uid;
end;
$$;

revoke all on function wf.auth_uid() from public;
