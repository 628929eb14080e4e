-- wf 0019: operations at a million runs (issue 14).
--
-- wf.stage_minutes: what wf.stage_health and wf.stage_series count, rolled up per stage and
-- minute by wf.tick from wf.events (the outcomes of attempts: how many succeeded and failed, and
-- a histogram of their durations), so the last hour costs sixty rows per stage instead of a
-- look-up per attempt. The views add the minutes not rolled up yet from wf.events themselves.
-- Kept for a day, like wf.stage_samples.
create table wf.stage_minutes (
  stage     text not null,
  minute    timestamptz not null,
  succeeded int not null,
  failed    int not null,
  -- call durations: {"<bucket>": count}, bucket = wf.duration_bucket(ms) (5% wide)
  durations jsonb not null,
  primary key (minute, stage)
);
revoke all on wf.stage_minutes from public;

-- how far each roll-up has read: wf.stage_minutes holds every outcome before `through`
create table wf.rollup_marks (
  name    text primary key,
  through timestamptz not null
);
revoke all on wf.rollup_marks from public;
insert into wf.rollup_marks (name, through) values ('stage_minutes', date_trunc('minute', now()) - interval '1 hour');

-- the stage (function) an attempt's outcome event is for — succeeded, retrying, failed, dead —
-- written by the answer that already holds the step's row, so that the roll-up and the views
-- count the minutes not rolled up yet without looking every step up (null on other events, and
-- on the outcomes of older versions: those are looked up)
alter table wf.events add column stage text;

-- wf.failures, newest first from the failures themselves (as wf.dead_letters reads its events):
-- events are only inserted, so a partial index costs an insert into it per failed attempt and
-- nothing on the hot path's updates
create index events_failures on wf.events (id) where kind in ('failed', 'dead', 'retrying');

-- retention_days may be a fraction of a day (a soak test keeps minutes); the description says so
update wf.settings
set description = 'finished runs older than this many days (a fraction is allowed) are deleted by wf.tick(), with their steps, events and queue messages, and so are the queues'' archived messages'
where key = 'retention_days';
