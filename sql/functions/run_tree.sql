-- wf.run_tree: a run and all its descendants (child runs of workflow steps, their
-- children …), each with its depth below the given run, its status and the parent step
-- that started it; parents before their children.
create or replace function wf.run_tree(run_id uuid)
returns table (run_id uuid, parent_run_id uuid, parent_step text, depth int, workflow text, status text,
               created_at timestamptz, finished_at timestamptz)
language sql
stable
security definer
set search_path = ''
as $$
  with recursive tree as (
    select r.id, r.parent_run_id, r.parent_step, 0 as depth, array[r.id::text] as path
    from wf.runs r where r.id = run_tree.run_id
    union all
    select c.id, c.parent_run_id, c.parent_step, tree.depth + 1, tree.path || c.id::text
    from tree join wf.runs c on c.parent_run_id = tree.id
    where tree.depth < 20
  )
  select t.id, t.parent_run_id, t.parent_step, t.depth, r.workflow, r.status, r.created_at, r.finished_at
  from tree t join wf.runs r on r.id = t.id
  order by t.path
$$;

revoke all on function wf.run_tree(uuid) from public;
grant execute on function wf.run_tree(uuid) to wf_reader, wf_admin;
