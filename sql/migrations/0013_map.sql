-- wf 0013: map over a list (DESIGN §10, for_each + max_parallel). A map step's items are rows of
-- wf.steps of their own, named `<step>[<index>]`, with the map step's function and their own
-- attempts, retries, DLQ entries and events; map_step names the step they belong to (its
-- definition row is theirs too), item_value is the item itself.
alter table wf.definition_steps
  add column for_each text,
  add column max_parallel int check (max_parallel is null or max_parallel between 1 and 1000);

alter table wf.steps
  add column map_step text,
  add column item int,
  add column item_value jsonb;

-- claim returns the item and the step's for_each template: a new result type
drop function if exists wf.claim(text, int);
