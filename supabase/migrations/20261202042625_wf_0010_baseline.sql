-- wf 0010: the baseline. The tables, indexes and queues of wf 0.1.0, whose migrations
-- 0001-0009 it squashes: a database that has all of those applied records this one as
-- applied without running it (see the `squashes` line below, read by the installer).
--
-- Migrations hold only tables, columns, indexes, types, queues, backfills and drops of old
-- signatures; every function lives in sql/functions/, every view in sql/views/, roles,
-- grants and policies in sql/access.sql (CONTRIBUTING.md, "How the SQL is laid out").
--
-- Tables are private: users go through the wf.* functions and views. Hot tables
-- (steps, runs) keep a low fillfactor and avoid indexes on columns that change,
-- so most state changes are HOT updates and write little WAL.
--
-- squashes: 0001-0009

-- pgmq: the installer provides it (extension or bundled SQL); on Supabase the
-- extension is enabled here when it is available and missing.
do $$
begin
  if not exists (select 1 from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
                 where n.nspname = 'pgmq' and p.proname = 'send') then
    if exists (select 1 from pg_catalog.pg_available_extensions where name = 'pgmq') then
      create extension if not exists pgmq;
    else
      raise exception 'wf needs pgmq: enable the pgmq extension or run `wf install`'
        using errcode = '55000';
    end if;
  end if;
end
$$;

create schema if not exists wf;
revoke all on schema wf from public;

-- settings that operators may change with plain update statements
create table wf.settings (
  key         text primary key,
  value       jsonb not null,
  description text not null
);
insert into wf.settings (key, value, description) values
  ('retention_days', '30', 'finished runs older than this many days are deleted by wf.tick()'),
  ('stuck_after_seconds', '900', 'a queued step older than this, or a running one this long past its lease, is stuck'),
  ('max_input_bytes', '1048576', 'largest run input accepted by wf.enqueue'),
  ('max_output_bytes', '1048576', 'largest step output stored by wf.complete');

-- one row per stage (edge function); its pgmq queue is wf_<function>
create table wf.stages (
  name               text primary key,
  queue              text not null unique,
  visibility_timeout int not null default 30 check (visibility_timeout between 1 and 86400),
  max_concurrency    int check (max_concurrency is null or max_concurrency > 0),
  created_at         timestamptz not null default now()
);

create table wf.definitions (
  workflow    text not null,
  version     int not null,
  definition  jsonb not null,
  checksum    text not null,
  -- input variables the templates need that only the run input can provide
  input_vars  text[] not null default '{}',
  created_at  timestamptz not null default now(),
  primary key (workflow, version)
);

-- the active flag and the current version live per workflow, not per version
create table wf.workflows (
  name            text primary key,
  current_version int not null,
  active          boolean not null default true,
  updated_at      timestamptz not null default now()
);

-- a definition's steps, normalised at define time so claim reads one row
create table wf.definition_steps (
  workflow         text not null,
  version          int not null,
  name             text not null,
  position         int not null,
  function         text not null references wf.stages (name),
  action           text not null,
  payload_template jsonb not null,
  when_template    text,
  depends_on       text[] not null,
  on_failure       text not null check (on_failure in ('abort', 'continue', 'retry')),
  max_attempts     int not null,
  timeout_seconds  int not null,
  visibility_timeout int not null,
  delay_seconds    int not null default 0,
  backoff          jsonb not null,
  primary key (workflow, version, name),
  foreign key (workflow, version) references wf.definitions (workflow, version)
);

create table wf.runs (
  id              uuid primary key,
  workflow        text not null,
  version         int not null,
  status          text not null check (status in ('scheduled', 'pending', 'running', 'completed', 'failed', 'cancelled')),
  input           jsonb not null,
  idempotency_key text,
  correlation_id  text,
  run_at          timestamptz,
  created_at      timestamptz not null default now(),
  started_at      timestamptz,
  finished_at     timestamptz,
  error           text,
  failed_step     text,
  foreign key (workflow, version) references wf.definitions (workflow, version),
  -- the signed-in Supabase user who started the run (null otherwise); its default,
  -- wf.auth_uid(), is set by sql/access.sql once the function exists
  owner           uuid
) with (fillfactor = 80);
create unique index runs_idempotency_key on wf.runs (workflow, idempotency_key)
  where idempotency_key is not null;
create index runs_created_at on wf.runs (created_at);
-- an app lists its runs newest first: partial, so runs without an owner cost nothing here
create index runs_owner on wf.runs (owner, created_at) where owner is not null;

create table wf.steps (
  run_id        uuid not null references wf.runs (id) on delete cascade,
  name          text not null,
  function      text not null,
  status        text not null check (status in ('waiting', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'dead', 'skipped', 'cancelled')),
  -- the current (or last) attempt; numbers keep growing across wf.retry so stale answers stay fenced
  attempt       int not null default 0,
  -- attempts made before the latest wf.retry: the budget is counted from here
  attempt_base  int not null default 0,
  msg_id        bigint,
  dlq_msg_id    bigint,
  queued_at     timestamptz,
  started_at    timestamptz,
  lease_until   timestamptz,
  finished_at   timestamptz,
  output        jsonb,
  error         text,
  http_status   int,
  stuck_at      timestamptz,
  primary key (run_id, name)
) with (fillfactor = 70);

-- append-only history: a run's whole story in order of id. No foreign key to
-- runs on purpose: its check takes a key-share lock on the run row for every
-- event, which costs WAL on the hot path; retention deletes events with their run.
create table wf.events (
  id      bigint generated always as identity,
  run_id  uuid not null,
  step    text,
  attempt int,
  kind    text not null,
  at      timestamptz not null default clock_timestamp(),
  detail  jsonb
);
create index events_run_id on wf.events (run_id);
-- BRIN costs nothing on insert once the table has grown past its summarized
-- ranges (vacuum summarizes only full ranges), and keeps time filters cheap
create index events_at on wf.events using brin (at);
select brin_desummarize_range('wf.events_at', 0);  -- or its first range is updated on every insert

create table wf.schedules (
  name       text primary key,
  cron       text not null,
  workflow   text not null references wf.workflows (name),
  input      jsonb not null default '{}',
  created_at timestamptz not null default now()
);

-- the dead-letter queue: one message per dead step, for people and alerts
select pgmq.create('wf_dlq');
