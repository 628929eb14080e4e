-- wf.duration_bucket: the histogram bucket of a call's duration in wf.stage_minutes. Bucket 0
-- holds durations under a millisecond; bucket b >= 1 those in [1.05^(b-1), 1.05^b) ms, so a
-- percentile read from the buckets (wf.duration_percentile) is within 2.5% of the true one.
create or replace function wf.duration_bucket(p_ms numeric)
returns int
language sql
immutable
parallel safe
set search_path = ''
as $$
  select case when p_ms is null then null
              when p_ms < 1 then 0
              else floor(ln(p_ms) / ln(1.05))::int + 1 end
$$;

revoke all on function wf.duration_bucket(numeric) from public;
grant execute on function wf.duration_bucket(numeric) to wf_reader, wf_worker, wf_admin;
