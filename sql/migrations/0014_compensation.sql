-- wf 0014: compensation (sagas, DESIGN §10). A step's `compensate` is a definition row of its
-- own, named `<step>:compensate` (no step name can contain ':'), that `compensates` the step;
-- when a run fails, one wf.steps row per succeeded step with a compensation is created and run,
-- in reverse order of completion: the run is `compensating`, then `failed`, or
-- `compensation_failed` when a compensation fails for good.
alter table wf.runs drop constraint runs_status_check;
alter table wf.runs add constraint runs_status_check
  check (status in ('scheduled', 'pending', 'running', 'paused', 'compensating', 'completed', 'failed',
                    'compensation_failed', 'cancelled'));

alter table wf.definition_steps add column compensates text;
alter table wf.steps add column compensates text;
