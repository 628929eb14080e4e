-- wf.run_inputs: one row per run, straight from wf.runs (no joins), with its input — what the
-- web dashboard pages, counts and searches before it joins wf.runs_overview for the rows it
-- shows. Keyset paging walks an index of migration 0018 backwards whatever the filter:
--   where [status = $1 | workflow = $1 | correlation_id = $1 and] (created_at, run_id) < ($2, $3)
--   order by created_at desc, run_id desc limit 50
create or replace view wf.run_inputs as
select
  r.id as run_id,
  r.workflow,
  r.version,
  r.status,
  r.correlation_id,
  r.created_at,
  r.finished_at,
  r.parent_run_id,
  r.input
from wf.runs r;
comment on view wf.run_inputs is
  'One row per run, without joins: status, workflow, correlation id, times, parent run and input. For paging newest first by (created_at, run_id) < (last page''s last row) order by created_at desc, run_id desc (indexed with and without a filter on status, workflow or correlation_id), counting and searching the input; then wf.runs_overview for the rows shown.';

revoke all on wf.run_inputs from public;
grant select on wf.run_inputs to wf_reader, wf_admin;
