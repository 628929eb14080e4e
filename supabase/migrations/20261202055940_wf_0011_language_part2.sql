-- wf 0011: the workflow language, part 2 (DESIGN §10) — step kinds besides calling a
-- function (a child workflow, a SQL function, waiting for a signal), time-relative steps,
-- run outputs, and the tables behind signals and registered SQL steps.

-- A step's kind. Steps that are not function calls go through the internal stage `_wf`
-- (queue wf__wf; no function can be called that, names start with [a-z0-9]). For them
-- `action` names what the step runs: the child workflow, the SQL function
-- (schema.function) or the signal; payload_template holds input_template / args_template.
alter table wf.definition_steps
  add column kind text not null default 'function'
    check (kind in ('function', 'workflow', 'sql', 'wait_for')),
  -- wait_for: seconds to wait for the signal (null: no limit)
  add column wait_seconds int check (wait_seconds is null or wait_seconds > 0),
  -- not_before: a template rendering to a timestamp; offset_seconds is added to it
  add column not_before text,
  add column offset_seconds int not null default 0;

insert into wf.stages (name, queue, visibility_timeout) values ('_wf', 'wf__wf', 60);
select pgmq.create('wf__wf');

-- the definition's output_template (null: the output is the final steps' outputs), and its
-- final steps (those no other step depends on), so a run's output is one indexed read
alter table wf.definitions
  add column output_template jsonb,
  add column final_steps text[] not null default '{}';
update wf.definitions d set final_steps = array(
  select s.name from wf.definition_steps s
  where s.workflow = d.workflow and s.version = d.version
    and not exists (select 1 from wf.definition_steps o
                    where o.workflow = d.workflow and o.version = d.version and s.name = any (o.depends_on))
  order by s.position);

-- child runs: their parent step, and how deep they are nested (a root run is 0)
alter table wf.runs
  add column parent_run_id uuid,
  add column parent_step text,
  add column depth int not null default 0,
  add column output jsonb;
create index runs_parent on wf.runs (parent_run_id) where parent_run_id is not null;

-- a workflow step's current child; wake_at: when a step waiting for a signal times out
alter table wf.steps
  add column child_run_id uuid,
  add column wake_at timestamptz;
create index steps_wake_at on wf.steps (wake_at) where wake_at is not null;

-- signals sent to a run: consumed by the step that waits for that name, or kept until one does
create table wf.signals (
  id          bigint generated always as identity primary key,
  run_id      uuid not null references wf.runs (id) on delete cascade,
  name        text not null,
  payload     jsonb not null,
  sent_at     timestamptz not null default clock_timestamp(),
  consumed_by text,
  consumed_at timestamptz
);
create index signals_waiting on wf.signals (run_id, name, id) where consumed_at is null;

-- SQL functions an admin allowed as steps (wf.allow_sql_step): name is schema.function
create table wf.sql_steps (
  fn         regprocedure primary key,
  name       text not null unique,
  allowed_at timestamptz not null default now()
);

-- claim returns the step's kind and its not_before template: a new result type
drop function if exists wf.claim(text, int);
