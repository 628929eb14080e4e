-- wf.template_vars: check that one template string parses (balanced delimiters,
-- non-empty expressions, balanced brackets and quotes) and return the input
-- variables it needs. A variable counts when an expression is a plain path
-- (`{{ name }}`, `{{ name.field }}`, `{{ input.name }}`, optionally filtered);
-- `steps`, `run` and expressions with a `default` filter are left to run time.
create or replace function wf.template_vars(template text, place text)
returns text[]
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_rest text;
  v_expr text;
  v_head text;
  v_match text[];
  v_vars text[] := '{}'::text[];
  v_depth int;
  v_quote text;
  v_ch text;
begin
  if template is null or position('{' in template) = 0 and position('}' in template) = 0 then
    return v_vars;
  end if;

  -- (the patterns below end in `{1,1}?`: a PostgreSQL regex made of alternatives `a|b` is
  -- always greedy as a whole, whatever its `.*?` say, so `{{ a }} and {{ b }}` would be one
  -- match; the non-greedy quantifier on the group makes each match the shortest)
  -- guard: every opening delimiter has its closing one and nothing is left over
  v_rest := regexp_replace(template, '(?:\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}){1,1}?', '', 'gs');
  if v_rest ~ '\{\{|\}\}|\{%|%\}|\{#|#\}' then
    perform wf.raise_input_error(format('%s: template does not parse (unbalanced {{ }} or {%% %%}): %s', place, left(template, 200)));
  end if;

  for v_match in select regexp_matches(template, '(?:\{\{(.*?)\}\}|\{%(.*?)%\}){1,1}?', 'gs') loop
    v_expr := coalesce(v_match[1], v_match[2]);
    if btrim(v_expr, E' \t\r\n-+') = '' then
      perform wf.raise_input_error(format('%s: template does not parse (empty expression): %s', place, left(template, 200)));
    end if;

    -- guard: brackets and quotes balance inside the expression
    v_depth := 0;
    v_quote := null;
    foreach v_ch in array regexp_split_to_array(v_expr, '') loop
      if v_quote is not null then
        if v_ch = v_quote then v_quote := null; end if;
      elsif v_ch in ('''', '"') then
        v_quote := v_ch;
      elsif v_ch in ('(', '[') then
        v_depth := v_depth + 1;
      elsif v_ch in (')', ']') then
        v_depth := v_depth - 1;
        exit when v_depth < 0;
      end if;
    end loop;
    if v_depth <> 0 or v_quote is not null then
      perform wf.raise_input_error(format('%s: template does not parse (unbalanced brackets or quotes in "%s")', place, btrim(v_expr)));
    end if;

    continue when v_match[1] is null;  -- {% statements %} are checked at run time
    -- a variable with a default filter is optional (`\y` is a word boundary; `\b` would be a backspace)
    continue when v_expr ~ '\|\s*(default|d)\y';
    v_head := btrim(split_part(v_expr, '|', 1));
    v_match := regexp_match(v_head, '^([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?(?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\]]*\])*$');
    continue when v_match is null;
    if v_match[1] = 'input' then
      if v_match[2] is not null then
        v_vars := v_vars || v_match[2];
      end if;
    elsif v_match[1] not in ('steps', 'run', 'true', 'false', 'none', 'True', 'False', 'None', 'loop', 'range') then
      v_vars := v_vars || v_match[1];
    end if;
  end loop;
  return v_vars;
end;
$$;

revoke all on function wf.template_vars(text, text) from public;
