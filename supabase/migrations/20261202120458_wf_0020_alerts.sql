-- alerts (wf.alerts, wf.raise_alerts): the thresholds, as settings operators change with plain
-- update statements (wf.check_setting refuses a value out of range). The defaults are the
-- architecture overview's: a pending queue over 1000, more than 5 % of calls failing, calls
-- taking more than 10 s. alert_workflow names a workflow wf.tick starts once per alert and hour
-- (JSON null: none), the way to route alerts to Slack through an edge function.
insert into wf.settings (key, value, description) values
  ('alert_queue_depth', '1000', 'alert when a stage has more messages waiting in its queue than this'),
  ('alert_failure_rate', '0.05', 'alert when more than this fraction of a stage''s calls answered in the last 5 minutes failed'),
  ('alert_failure_min_calls', '20', 'the failure rate alert needs at least this many calls answered in the last 5 minutes'),
  ('alert_call_ms', '10000', 'alert when a stage''s median call (p50) over the last hour takes longer than this many milliseconds'),
  ('alert_dlq_growth', '0', 'alert when more than this many steps of a stage were dead-lettered in the last hour'),
  ('alert_workflow', 'null', 'a workflow wf.tick starts once per alert and hour with the alert as its input (null: none)')
on conflict (key) do nothing;
