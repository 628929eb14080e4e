-- wf.alerts: what needs a person now, one row per alert, each over a threshold in wf.settings —
-- steps stuck in a stage (wf.stuck), a stage's queue deeper than alert_queue_depth, a stage
-- failing more than alert_failure_rate of its calls in the last 5 minutes, a stage's median call
-- slower than alert_call_ms, a stage's steps dead-lettered in the last hour (more than
-- alert_dlq_growth), and a setting alert_workflow naming no active workflow. Built on
-- wf.stage_health and wf.stuck so it says what those say. The key (kind:subject) is stable while
-- the condition lasts: wf.raise_alerts starts the alert workflow once per key and hour.
create or replace view wf.alerts as
with limits as (
  select (wf.setting('alert_queue_depth'))::numeric as queue_depth,
         (wf.setting('alert_failure_rate'))::numeric as failure_rate,
         (wf.setting('alert_failure_min_calls'))::numeric as failure_min_calls,
         (wf.setting('alert_call_ms'))::numeric as call_ms,
         (wf.setting('alert_dlq_growth'))::numeric as dlq_growth,
         wf.setting('alert_workflow') #>> '{}' as alert_workflow
), health as (
  select h.stage, h.depth, h.oldest_age, h.succeeded_5m, h.failed_5m, h.p50_ms, h.p95_ms
  from wf.stage_health h
), stuck as (
  select st.function as stage, count(*) as steps, min(st.since) as since,
         (array_agg(distinct st.run_id))[1:10] as runs,
         count(*) filter (where st.status = 'running') as running
  from wf.stuck st
  group by st.function
), dead as (
  -- dead events of the last hour (BRIN events_at), each one's stage its own (or, written before
  -- wf 0019, its step's, by key)
  select coalesce(e.stage, s.function) as stage, count(*) as steps, min(e.at) as since,
         (array_agg(distinct e.run_id))[1:10] as runs
  from wf.events e
  left join lateral (select s.function from wf.steps s
                     where e.stage is null and s.run_id = e.run_id and s.name = e.step limit 1) s on true
  where e.kind = 'dead' and e.at > now() - interval '1 hour'
  group by 1
), raised as (
  select 'stuck' as kind, st.stage as subject, st.steps::numeric as value, 0::numeric as threshold, st.since,
         format('stage %s: %s step(s) stuck since %s (%s)', st.stage, st.steps,
                to_char(st.since at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS "UTC"'),
                case when st.running > 0 then 'running past their lease: the consumer that claimed them is gone'
                     else 'waiting in the queue longer than stuck_after_seconds: no consumer takes work from this stage' end)
           as message,
         jsonb_build_object('runs', to_jsonb(st.runs), 'stuck_after_seconds', wf.setting('stuck_after_seconds')) as detail
  from stuck st
  union all
  select 'queue_depth', h.stage, h.depth::numeric, l.queue_depth, now() - h.oldest_age,
         format('stage %s: %s messages waiting, more than alert_queue_depth (%s); the oldest for %s',
                h.stage, h.depth, l.queue_depth, date_trunc('second', h.oldest_age)),
         jsonb_build_object('oldest_age_seconds', round(extract(epoch from h.oldest_age)))
  from health h cross join limits l
  where h.depth > l.queue_depth
  union all
  select 'failure_rate', h.stage, round(h.failed_5m::numeric / (h.succeeded_5m + h.failed_5m), 4), l.failure_rate,
         now() - interval '5 minutes',
         format('stage %s: %s of %s calls failed in the last 5 minutes (%s %%), more than alert_failure_rate (%s %%)',
                h.stage, h.failed_5m, h.succeeded_5m + h.failed_5m,
                round(100.0 * h.failed_5m / (h.succeeded_5m + h.failed_5m), 1), round(100 * l.failure_rate, 2)),
         jsonb_build_object('failed', h.failed_5m, 'succeeded', h.succeeded_5m)
  from health h cross join limits l
  where h.succeeded_5m + h.failed_5m >= l.failure_min_calls
    and h.failed_5m::numeric / (h.succeeded_5m + h.failed_5m) > l.failure_rate
  union all
  select 'slow_calls', h.stage, h.p50_ms::numeric, l.call_ms, now() - interval '1 hour',
         format('stage %s: its median call took %s ms over the last hour (p95 %s ms), more than alert_call_ms (%s ms)',
                h.stage, h.p50_ms, h.p95_ms, l.call_ms),
         jsonb_build_object('p50_ms', h.p50_ms, 'p95_ms', h.p95_ms)
  from health h cross join limits l
  where h.p50_ms > l.call_ms
  union all
  select 'dlq_growth', d.stage, d.steps::numeric, l.dlq_growth, d.since,
         format('stage %s: %s step(s) dead-lettered in the last hour, more than alert_dlq_growth (%s); see wf.dead_letters, then wf.retry',
                d.stage, d.steps, l.dlq_growth),
         jsonb_build_object('runs', to_jsonb(d.runs))
  from dead d cross join limits l
  where d.steps > l.dlq_growth
  union all
  select 'alert_workflow_missing', l.alert_workflow, null, null, null,
         case when w.name is null
              then format('setting alert_workflow names workflow %s, which does not exist: no alert is sent (wf.define it, or set alert_workflow to null)',
                          l.alert_workflow)
              else format('setting alert_workflow names workflow %s, which is inactive: no alert is sent (wf.activate(%L))',
                          l.alert_workflow, l.alert_workflow) end,
         null
  from limits l
  left join wf.workflows w on w.name = l.alert_workflow
  where l.alert_workflow is not null and w.active is not true
)
select r.kind || ':' || r.subject as key, r.kind, r.subject, r.value, r.threshold, r.since, r.message, r.detail
from raised r
order by r.kind, r.subject;
comment on view wf.alerts is
  'What needs a person now, one row per alert: key (kind:subject, stable while it lasts), kind (stuck, queue_depth, failure_rate, slow_calls, dlq_growth, alert_workflow_missing), subject (the stage, or the alert workflow), value and the threshold it went over (wf.settings alert_*), since, message, detail (runs to look at). wf.tick starts the alert_workflow setting''s workflow once per alert and hour.';

revoke all on wf.alerts from public;
grant select on wf.alerts to wf_reader, wf_admin;
