-- wf.queue_name: the pgmq queue of a stage; pgmq caps names at 47 characters,
-- so long function names keep a prefix and a hash suffix
create or replace function wf.queue_name(function_name text)
returns text
language sql
immutable
strict
set search_path = ''
as $$
  select case
    when length(function_name) <= 44 then 'wf_' || replace(function_name, '-', '_')
    else 'wf_' || replace(left(function_name, 35), '-', '_') || '_' || left(md5(function_name), 8)
  end
$$;

revoke all on function wf.queue_name(text) from public;
