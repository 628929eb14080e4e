-- wf.duration_percentile: a percentile (0..1) of the durations counted in a histogram of
-- wf.duration_bucket buckets ({"<bucket>": count}): the middle of the bucket that holds it
-- (geometric, so within 2.5%); null for an empty histogram.
create or replace function wf.duration_percentile(p_histogram jsonb, p_fraction numeric)
returns numeric
language sql
immutable
parallel safe
set search_path = ''
as $$
  select case when h.bucket = 0 then 0.5 else round(power(1.05, h.bucket - 0.5)::numeric, 1) end
  from (
    select b.key::int as bucket,
           sum(b.value::bigint) over (order by b.key::int) as below,
           sum(b.value::bigint) over () as total
    from jsonb_each_text(p_histogram) b
  ) h
  where h.below >= p_fraction * h.total
  order by h.bucket
  limit 1
$$;

revoke all on function wf.duration_percentile(jsonb, numeric) from public;
grant execute on function wf.duration_percentile(jsonb, numeric) to wf_reader, wf_worker, wf_admin;
