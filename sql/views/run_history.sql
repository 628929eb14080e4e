-- wf.run_history: a run's whole story in order, straight from the append-only wf.events.
create or replace view wf.run_history as
select e.run_id, e.id as seq, e.at, e.step, e.attempt, e.kind, e.detail
from wf.events e;
comment on view wf.run_history is
  'A run''s whole story, one row per transition (created, started, succeeded, retrying, dead, cancelled, stale answers …): filter by run_id, order by seq.';

revoke all on wf.run_history from public;
grant select on wf.run_history to wf_reader, wf_admin;
