-- wf.run_steps: one row per step of a run — filter by run_id — with what its definition says
-- (kind, function, action, depends_on, for_each) and where it is (status, attempt, times,
-- output, error): what the web dashboard draws the step graph and the step list from. Every
-- step of the definition is here: wf.enqueue makes a row per step up front, but a compensation
-- gets its row only when its run fails, so until then it shows as `waiting` from the
-- definition. A map item (`<step>[<i>]`) reads its map step's definition row (the join is on
-- coalesce(map_step, name)); a compensation (`<step>:compensate`) has a row of its own that
-- names the step it undoes (compensates). position puts both right after their step.
create or replace view wf.run_steps as
select
  x.run_id,
  x.name,
  (row_number() over (partition by x.run_id
                      order by p.step_position, x.compensates is not null, x.item nulls first, x.name) - 1)::int
    as position,
  x.kind,
  x.function,
  x.action,
  x.depends_on,
  x.for_each,
  x.map_step,
  x.item,
  x.item_value,
  x.compensates,
  x.child_run_id,
  x.status,
  x.attempt,
  x.queued_at,
  x.started_at,
  x.finished_at,
  x.output,
  x.error,
  x.http_status
from (
  -- the run's step rows, each with its definition row: a primary key look-up per step (the
  -- limit keeps it one; as a plain join the planner, expecting a handful of definition rows,
  -- would read the run's steps once per definition row)
  select r.id as run_id, s.name, d.position, d.kind, d.function, d.action, d.depends_on, d.for_each, s.map_step,
         s.item, s.item_value, d.compensates, s.child_run_id, s.status, s.attempt, s.queued_at, s.started_at,
         s.finished_at, s.output, s.error, s.http_status, d.workflow, d.version
  from wf.runs r
  join wf.steps s on s.run_id = r.id
  cross join lateral (
    select d.* from wf.definition_steps d
    where d.workflow = r.workflow and d.version = r.version and d.name = coalesce(s.map_step, s.name)
    limit 1
  ) d
  union all
  -- the definition's steps that have no row yet (compensations until their run fails)
  select r.id, d.name, d.position, d.kind, d.function, d.action, d.depends_on, d.for_each, null, null, null,
         d.compensates, null, 'waiting', 0, null, null, null, null, null, null, d.workflow, d.version
  from wf.runs r
  join wf.definition_steps d on d.workflow = r.workflow and d.version = r.version
  where not exists (select 1 from wf.steps s where s.run_id = r.id and s.name = d.name)
) x
-- where a step sits: its own definition position; a compensation's is the step's it undoes
cross join lateral (
  select coalesce((select u.position from wf.definition_steps u
                   where x.compensates is not null
                     and u.workflow = x.workflow and u.version = x.version and u.name = x.compensates),
                  x.position) as step_position
) p;
comment on view wf.run_steps is
  'One row per step of a run (filter by run_id), in definition order with map items and compensations after their step (position): the definition''s kind, function, action, depends_on and for_each (a map item has its map step''s), the map item''s index and value, the step a compensation undoes, the child run, status (waiting for a step with no row yet), attempt, times, output, error, http_status.';

revoke all on wf.run_steps from public;
grant select on wf.run_steps to wf_reader, wf_admin;
