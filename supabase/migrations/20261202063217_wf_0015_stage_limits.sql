-- wf 0015: stage limits that hold across all workers (DESIGN §11, wf.configure_stage): at
-- most max_concurrency calls of a stage in flight and at most rate_per_second (with a burst)
-- started, enforced by wf.claim under the stage row's lock. Only a stage with limits pays for
-- them: its claims hold leases here; a lease whose attempt is no longer running is dropped by
-- the next claim, so a dead worker's leases free themselves.
alter table wf.stages
  add column rate_per_second numeric check (rate_per_second is null or rate_per_second > 0),
  add column burst int check (burst is null or burst >= 1),
  -- the token bucket of the rate limit: tokens left at tokens_at
  add column tokens numeric,
  add column tokens_at timestamptz;

create table wf.stage_leases (
  stage   text not null references wf.stages (name) on delete cascade,
  run_id  uuid not null,
  step    text not null,
  attempt int not null,
  primary key (stage, run_id, step)
);
