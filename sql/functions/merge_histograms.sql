-- wf.merge_histograms: two duration histograms ({"<bucket>": count}, wf.duration_bucket's
-- buckets) added bucket by bucket, for the roll-ups that add a tick's counts to a minute's or an
-- hour's row already there (wf.roll_up_stage_minutes, wf.roll_up_workflow_hours).
create or replace function wf.merge_histograms(p_a jsonb, p_b jsonb)
returns jsonb
language sql
immutable
parallel safe
set search_path = ''
as $$
  select coalesce(jsonb_object_agg(b.key, b.n), '{}')
  from (select x.key, sum(x.value::bigint) as n
        from (select * from jsonb_each_text(coalesce(p_a, '{}'))
              union all select * from jsonb_each_text(coalesce(p_b, '{}'))) x
        group by x.key) b
$$;

revoke all on function wf.merge_histograms(jsonb, jsonb) from public;
grant execute on function wf.merge_histograms(jsonb, jsonb) to wf_reader, wf_admin;
