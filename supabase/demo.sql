-- The demo's own tables: what the demo edge functions "did" instead of calling third
-- parties (demo.outbox), switches the demo flips to break and fix things (demo.flags), and
-- a proposal table whose status change starts a workflow through wf.enqueue_trigger.
-- Loaded by scripts/demo after `wf install`; safe to load twice.

create schema if not exists demo;

create table if not exists demo.outbox (
  id          bigint generated always as identity primary key,
  at          timestamptz not null default now(),
  function    text not null,
  action      text not null,
  -- Standard Webhooks id (<run_id>:<step>): the same on every attempt, so a repeat is ignored
  webhook_id  text unique,
  run_id      uuid,
  step        text,
  payload     jsonb not null,
  result      jsonb not null
);

create table if not exists demo.flags (
  key   text primary key,
  value jsonb not null
);
insert into demo.flags (key, value) values ('bubble_api_key_valid', 'true')
on conflict (key) do nothing;

create table if not exists demo.proposal (
  id          text primary key,
  status      text not null default 'pending',
  guest_id    text not null,
  host_id     text not null,
  listing_id  text not null,
  guest_email text not null,
  guest_phone text not null
);

-- pending → accepted starts the proposal-status-change workflow, in the same transaction
create or replace trigger proposal_accepted
  after update of status on demo.proposal
  for each row
  when (old.status = 'pending' and new.status = 'accepted')
  execute function wf.enqueue_trigger('proposal-status-change');
