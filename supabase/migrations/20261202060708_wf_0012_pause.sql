-- wf 0012: pause and resume (DESIGN §10) — a run can be `paused` (nothing new starts; calls
-- in flight finish and are recorded), and a stage can be paused (no worker claims from it;
-- its messages wait untouched in its queue).
alter table wf.runs drop constraint runs_status_check;
alter table wf.runs add constraint runs_status_check
  check (status in ('scheduled', 'pending', 'running', 'paused', 'completed', 'failed', 'cancelled'));

alter table wf.stages add column paused boolean not null default false;
