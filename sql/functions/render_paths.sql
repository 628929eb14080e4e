-- wf.render_paths: render a template whose strings use only {{ path }} expressions (see
-- wf.check_output_template) over a context, in SQL. A string that is exactly one
-- `{{ path }}` becomes the value itself (number, object …); in other strings each
-- expression is replaced by its text. A path that leads nowhere renders as null (or '').
create or replace function wf.render_paths(template jsonb, context jsonb)
returns jsonb
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_text text;
  v_match text[];
  v_value jsonb;
  v_out text;
  v_parts text[];
  v_i int;
begin
  case jsonb_typeof(template)
  when 'object' then
    return (select coalesce(jsonb_object_agg(e.key, wf.render_paths(e.value, context)), '{}'::jsonb)
            from jsonb_each(template) e);
  when 'array' then
    return (select coalesce(jsonb_agg(wf.render_paths(e.value, context) order by e.i), '[]'::jsonb)
            from jsonb_array_elements(template) with ordinality e(value, i));
  when 'string' then
    v_text := template #>> '{}';
    v_match := regexp_match(v_text, '^\s*\{\{\s*([^{}]*?)\s*\}\}\s*$');
    if v_match is not null then
      return coalesce(context #> wf.path_keys(v_match[1]), 'null'::jsonb);
    end if;
    -- one pass: the text between expressions, then each expression's value (a value that
    -- itself looks like {{ … }} is not rendered again)
    v_out := '';
    v_parts := regexp_split_to_array(v_text, '\{\{\s*[^{}]*?\s*\}\}');
    v_i := 1;
    for v_match in select regexp_matches(v_text, '\{\{\s*([^{}]*?)\s*\}\}', 'g') loop
      v_value := context #> wf.path_keys(v_match[1]);
      v_out := v_out || v_parts[v_i]
               || case when v_value is null or v_value = 'null'::jsonb then ''
                       when jsonb_typeof(v_value) = 'string' then v_value #>> '{}'
                       else v_value::text end;
      v_i := v_i + 1;
    end loop;
    v_out := v_out || v_parts[v_i];
    return to_jsonb(v_out);
  else
    return template;
  end case;
end;
$$;

revoke all on function wf.render_paths(jsonb, jsonb) from public;
