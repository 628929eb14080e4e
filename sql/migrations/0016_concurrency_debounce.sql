-- wf 0016: concurrency keys and debounce (DESIGN §11). A run of a workflow with
-- `concurrency` carries its key value (a dotted path into its input; null is a bucket too)
-- and the limit; one that finds the limit reached waits `held`, first in first out, until a
-- run with its key ends. A run of a workflow with `debounce` carries its debounce key while it
-- has not started, so a later enqueue with the same key can take it over. The indexes'
-- predicates name only columns that never change, so status updates stay HOT.
alter table wf.runs
  add column concurrency_key text,
  add column concurrency_limit int,
  add column held boolean not null default false,
  add column debounce_key text;
create index runs_concurrency on wf.runs (workflow, concurrency_key, created_at) where concurrency_limit is not null;
create index runs_debounce on wf.runs (workflow, debounce_key) where debounce_key is not null;
