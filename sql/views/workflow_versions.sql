-- wf.workflow_versions: every stored version of every workflow, newest first, with whether it
-- is the current one and whether the workflow is active — what `wf workflows` and `wf diff`
-- read (a wf_reader login reads no tables).
create or replace view wf.workflow_versions as
select
  d.workflow,
  d.version,
  d.version = w.current_version as current,
  w.active,
  d.created_at,
  jsonb_array_length(d.definition -> 'steps') as steps,
  d.definition
from wf.definitions d
join wf.workflows w on w.name = d.workflow
order by d.workflow, d.version desc;
comment on view wf.workflow_versions is
  'Every stored version of every workflow (newest first): whether it is current, whether the workflow is active, its step count and its definition.';

revoke all on wf.workflow_versions from public;
grant select on wf.workflow_versions to wf_reader, wf_admin;
