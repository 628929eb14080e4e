-- wf 0017: priorities (DESIGN §11). A run's priority (−100 … 100) puts its steps' messages in
-- one of three queues of their stage — `<queue>_hi` for priority > 0, the stage's queue for 0,
-- `<queue>_lo` for < 0 — and wf.claim reads them in that order, so a high-priority step is
-- claimed before a backlog of ordinary ones (pgmq reads each queue in message order; a queue
-- per band keeps to pgmq's API). Band queues are created the first time a run needs one.
alter table wf.runs add column priority smallint not null default 0 check (priority between -100 and 100);
alter table wf.stages
  add column queue_hi text unique,
  add column queue_lo text unique;
alter table wf.schedules add column priority smallint not null default 0 check (priority between -100 and 100);

-- wf.enqueue and wf.schedule take a priority: new signatures
drop function if exists wf.enqueue(text, jsonb, text, timestamptz, text);
drop function if exists wf.schedule(text, text, text, jsonb);
