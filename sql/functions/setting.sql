-- wf.setting: read one operator setting as jsonb
create or replace function wf.setting(setting_key text)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select s.value from wf.settings s where s.key = setting_key
$$;

revoke all on function wf.setting(text) from public;
grant execute on function wf.setting(text) to wf_reader, wf_admin;
