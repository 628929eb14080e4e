-- wf.check_output_template: a definition's output_template may only use {{ path }}
-- expressions (`{{ steps.create_thread.output.id }}`, `{{ input.listing_id }}`,
-- `{{ items[0] }}`): it is rendered in SQL, in the transaction that completes the run
-- (wf.render_paths), where Jinja2 is not at hand. Raises 22023 naming the place.
create or replace function wf.check_output_template(template jsonb, place text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_field jsonb;
  v_match text[];
begin
  for v_field in select jsonb_path_query(template, 'strict $.** ? (@.type() == "string")') loop
    perform wf.template_vars(v_field #>> '{}', place);
    if (v_field #>> '{}') ~ '\{%|\{#' then
      perform wf.raise_input_error(format('%s: only {{ path }} expressions are supported here, got %s',
        place, left(v_field #>> '{}', 200)));
    end if;
    for v_match in select regexp_matches(v_field #>> '{}', '\{\{(.*?)\}\}', 'gs') loop
      if btrim(v_match[1]) !~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+|\[[0-9]+\])*$' then
        perform wf.raise_input_error(format('%s: only {{ path }} expressions are supported here (no filters or operators), got {{%s}}',
          place, v_match[1]));
      end if;
    end loop;
  end loop;
end;
$$;

revoke all on function wf.check_output_template(jsonb, text) from public;
