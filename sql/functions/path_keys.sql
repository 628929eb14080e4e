-- wf.path_keys: a template path as the keys of a jsonb #> lookup:
-- 'steps.quote.output.items[0].id' → {steps,quote,output,items,0,id}
create or replace function wf.path_keys(path text)
returns text[]
language sql
immutable
strict
set search_path = ''
as $$
  select string_to_array(regexp_replace(btrim(path), '\[([0-9]+)\]', '.\1', 'g'), '.')
$$;

revoke all on function wf.path_keys(text) from public;
