-- The demo's own tables: what the demo edge functions "did" instead of calling third
-- parties (demo.outbox), switches the demo flips to break and fix things (demo.flags), a
-- proposal table whose status change starts a workflow through wf.enqueue_trigger, and the
-- SQL function proposal-status-change's `update_proposal` step runs (a sql step).
-- Loaded by scripts/demo (and by tests) after `wf install` and before `wf define templates/`:
-- wf.define refuses a sql step whose function is not allowed yet. Safe to load twice.

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
-- stamped by demo.set_proposal_status (the workflow's record of the acceptance)
alter table demo.proposal add column if not exists accepted_at timestamptz;

-- pending → accepted starts the proposal-status-change workflow, in the same transaction —
-- unless the change is that workflow's own `update_proposal` step (a run started by
-- `wf enqueue` for a pending proposal), which must not start a second run
create or replace trigger proposal_accepted
  after update of status on demo.proposal
  for each row
  when (old.status = 'pending' and new.status = 'accepted'
        and current_setting('demo.in_workflow_step', true) is distinct from 'on')
  execute function wf.enqueue_trigger('proposal-status-change');

-- demo.set_proposal_status: proposal-status-change's `update_proposal` step, a sql step — it
-- runs in the transaction that records the step's success, so the update and the outbox row
-- commit exactly once with it. args: {"proposal_id", "status", "run_id" (optional, for the
-- outbox)}. Sets the status (and accepted_at, the first time it is accepted); a proposal that
-- is not in demo.proposal (a run started by `wf enqueue` rather than the trigger) is not an
-- error: the answer says found false. A missing id or an unknown status raises 22023, which
-- wf does not retry. Returns {"proposal_id", "status", "found"}.
create or replace function demo.set_proposal_status(args jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_id text := nullif(btrim(args ->> 'proposal_id'), '');
  v_status text := args ->> 'status';
  v_found boolean;
  v_result jsonb;
begin
  if v_id is null then
    raise exception 'demo.set_proposal_status: proposal_id: required' using errcode = '22023';
  end if;
  if v_status is null or v_status not in ('pending', 'accepted', 'declined', 'rejected', 'cancelled',
                                          'withdrawn', 'expired') then
    raise exception 'demo.set_proposal_status: status: must be one of pending, accepted, declined, rejected, cancelled, withdrawn, expired (got %)',
      coalesce(v_status, 'nothing') using errcode = '22023';
  end if;
  -- this change is the workflow's own: the proposal_accepted trigger must not start another run
  perform pg_catalog.set_config('demo.in_workflow_step', 'on', true);
  update demo.proposal p
  set status = v_status,
      accepted_at = case when v_status = 'accepted' then coalesce(p.accepted_at, pg_catalog.now())
                         else p.accepted_at end
  where p.id = v_id;
  v_found := found;
  perform pg_catalog.set_config('demo.in_workflow_step', 'off', true);
  v_result := pg_catalog.jsonb_build_object('proposal_id', v_id, 'status', v_status, 'found', v_found);
  -- what the step did, like the demo edge functions record their calls (no webhook-id: the
  -- transaction, not a dedupe key, makes it happen once)
  insert into demo.outbox ("function", action, run_id, payload, result)
  values ('sql', 'set_proposal_status', (args ->> 'run_id')::uuid, args, v_result);
  return v_result;
end;
$$;

revoke all on function demo.set_proposal_status(jsonb) from public;
-- an admin's decision, once: templates/proposal-status-change.json names it in a sql step
select wf.allow_sql_step('demo.set_proposal_status(jsonb)');
