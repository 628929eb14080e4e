-- wf.raise_input_error: one place that raises a bad-input error (SQLSTATE 22023)
create or replace function wf.raise_input_error(message text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise exception '%', message using errcode = '22023';
end;
$$;

revoke all on function wf.raise_input_error(text) from public;
