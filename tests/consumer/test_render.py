"""Template rendering (README, Definition reference), no database: JSON types, text, missing data, `when`,
the sandbox."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from wf.render import RenderError, build_context, render_payload, render_when

CONTEXT = {
    "input": {"n": 42, "price": 9.5, "ok": True, "no": False, "obj": {"a": [1, 2]}, "items": ["x", "y"],
              "nothing": None, "name": "Grace", "zero": 0},
    "steps": {"charge": {"status": "failed", "output": None, "error": "card declined"},
              "lookup": {"status": "succeeded", "output": {"id": 7, "tags": ["t"]}, "error": None}},
    "run": {"id": "r-1", "workflow": "wf-x", "version": 3, "correlation_id": "c-1", "attempt": 2},
}


def render(template: Any) -> Any:
    return render_payload(template, build_context(copy.deepcopy(CONTEXT)), "notify")


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ n }}", 42),
    ("{{n}}", 42),
    ("  {{ n }}  ", 42),
    ("{{ price }}", 9.5),
    ("{{ ok }}", True),
    ("{{ no }}", False),
    ("{{ obj }}", {"a": [1, 2]}),
    ("{{ items }}", ["x", "y"]),
    ("{{ nothing }}", None),
    ("{{ zero }}", 0),
    ("{{ name }}", "Grace"),
    ("{{ input.n }}", 42),
    ("{{ n + 1 }}", 43),
    ("{{ n > 40 }}", True),
    ("{{ items | length }}", 2),
    ("{{ steps.lookup.output }}", {"id": 7, "tags": ["t"]}),
    ("{{ steps.lookup.output.id }}", 7),
    ("{{ steps.lookup.output['tags'][0] }}", "t"),
    ("{{ steps.charge.output }}", None),
    ("{{ run.version }}", 3),
    ("{{ {'k': n, 'l': [ok, nothing]} }}", {"k": 42, "l": [True, None]}),
    ("{{ (1, 2) }}", [1, 2]),
])
def test_single_expression_keeps_its_json_type(template, expected):
    value = render(template)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(("template", "expected"), [
    ("n={{ n }}", "n=42"),
    ("{{ n }}{{ n }}", "4242"),
    ("{{ n }} and {{ ok }}", "42 and True"),
    ("Hello {{ name }}!", "Hello Grace!"),
    ("{{ name }} ", "Grace"),  # surrounding whitespace belongs to the single expression
    ("{% if ok %}yes{% else %}no{% endif %}", "yes"),
    ("{{ obj }}!", "{'a': [1, 2]}!"),
    ("run {{ run.id }} of {{ run.workflow }} v{{ run.version }}", "run r-1 of wf-x v3"),
    ("no templates here", "no templates here"),
    ("{ not a template }", "{ not a template }"),
    ("", ""),
])
def test_mixed_strings_render_to_text(template, expected):
    assert render(template) == expected


def test_nested_templates_render_everywhere_and_other_values_pass_through():
    template = {"a": {"b": ["{{ n }}", "x{{ n }}", 5, None, True]}, "c": 1.5, "d": "{{ obj.a }}"}
    assert render(template) == {"a": {"b": [42, "x42", 5, None, True]}, "c": 1.5, "d": [1, 2]}
    assert render(["{{ ok }}"]) == [True]
    assert render(17) == 17


def test_the_input_is_at_top_level_and_under_input():
    ctx = build_context({"input": {"a": 1}, "steps": {}, "run": {}})
    assert render_payload({"x": "{{ a }}", "y": "{{ input.a }}"}, ctx, "s") == {"x": 1, "y": 1}
    assert build_context({})["input"] == {}


@pytest.mark.parametrize(("template", "place", "missing"), [
    ("{{ missing_var }}", "payload_template.field", "'missing_var' is undefined"),
    ("Hi {{ missing_var }}", "payload_template.field", "'missing_var' is undefined"),
    ("{{ missing_var | upper }}", "payload_template.field", "'missing_var' is undefined"),
    ("{{ steps.lookup.output.nope }}", "payload_template.field", "has no attribute 'nope'"),
    ("{{ steps.unknown_step.output }}", "payload_template.field", "has no attribute 'unknown_step'"),
    ("{{ input.absent }}", "payload_template.field", "has no attribute 'absent'"),
])
def test_missing_variable_raises_naming_the_variable_and_the_step(template, place, missing):
    with pytest.raises(RenderError) as err:
        render({"field": template})
    message = str(err.value)
    assert message.startswith(f"step notify: {place}: ")
    assert missing in message


def test_the_error_names_the_place_inside_nested_templates():
    with pytest.raises(RenderError, match=r"^step notify: payload_template\.a\.list\[1\]: 'ghost' is undefined$"):
        render({"a": {"list": ["{{ n }}", "{{ ghost }}"]}})


@pytest.mark.parametrize("template", ["{{ 1 / 0 }}", "{{ name + 1 }}", "{{ items[5] }}"])
def test_runtime_errors_in_expressions_are_render_errors(template):
    with pytest.raises(RenderError, match=r"^step notify: payload_template\.f: "):
        render({"f": template})


def test_a_template_that_does_not_parse_is_a_render_error():
    with pytest.raises(RenderError, match=r"^step notify: payload_template\.f: "):
        render({"f": "{{ n + }}"})


@pytest.mark.parametrize("value", ["", "0", "false", "False", "FALSE", "no", "off", "none", "None", "null", " false "])
def test_when_false_like_strings_skip(value):
    ctx = build_context({"input": {"v": value}})
    assert render_when("{{ v }}", ctx, "s") is False
    assert render_when("x{{ v }}", ctx, "s") is True  # mixed text is a non-empty string


@pytest.mark.parametrize("value", [False, 0, 0.0, None, [], {}])
def test_when_false_like_values_skip(value):
    assert render_when("{{ v }}", build_context({"input": {"v": value}}), "s") is False


@pytest.mark.parametrize("value", [True, 1, -1, 0.5, "yes", "true", "1", "anything", [0], {"a": 1}])
def test_when_true_like_values_run(value):
    assert render_when("{{ v }}", build_context({"input": {"v": value}}), "s") is True


def test_when_sees_earlier_steps():
    ctx = build_context(CONTEXT)
    assert render_when("{{ steps.charge.status == 'failed' }}", ctx, "s") is True
    assert render_when("{{ steps.lookup.status == 'failed' }}", ctx, "s") is False
    assert render_when("{% if steps.lookup.output.id > 5 %}go{% endif %}", ctx, "s") is True
    assert render_when("{% if steps.lookup.output.id > 50 %}go{% endif %}", ctx, "s") is False


def test_no_when_means_run():
    assert render_when(None, build_context({}), "s") is True


def test_when_with_a_missing_variable_is_an_error_naming_the_step():
    with pytest.raises(RenderError, match=r"^step s: when: 'ghost' is undefined$"):
        render_when("{{ ghost }}", build_context({}), "s")


@pytest.mark.parametrize("template", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "x{{ ''.__class__ }}",
    "{{ obj.__class__ }}",
    "{{ name.format.__globals__ }}",
    "{{ items.__len__() }}",
    "{{ lipsum.__globals__ }}",
    "{{ cycler.__init__.__globals__ }}",
])
def test_the_sandbox_blocks_python_internals(template):
    ctx = build_context(CONTEXT)
    with pytest.raises(RenderError) as err:
        render_payload({"f": template}, ctx, "s")
    assert "is unsafe" in str(err.value), str(err.value)


def test_rendering_does_not_change_the_template():
    template = {"a": "{{ n }}", "b": ["{{ ok }}"]}
    render(template)
    assert template == {"a": "{{ n }}", "b": ["{{ ok }}"]}


# ---- plain paths are looked up without Jinja, with Jinja's answer ----------------------------------------

PLAIN_CONTEXT = build_context({
    "input": {"n": 7, "email": "a@b.c", "flag": False, "none": None, "nested": {"items": [1, 2], "x": {"y": 1.5}},
              "keys": "a key named like a dict method", "list": [1, {"a": 2}]},
    "steps": {"create": {"output": {"id": "t-1", "items": {"k": 1}, "deep": {"v": [True]}}}},
    "run": {"id": "r-1"}})


@pytest.mark.parametrize("expr", [
    "n", "email", "flag", "none", "nested", "nested.x.y", "input.n", "input.nested.x", "steps.create.output.id",
    "steps.create.output.deep", "run.id", "keys", "input.keys", "nested.items", "steps.create.output.items",
    "list", " n ", "input.list"])
def test_a_plain_path_renders_exactly_as_jinja_renders_it(expr):
    from wf.render import _expression, _native

    assert render_payload({"v": f"{{{{{expr}}}}}"}, PLAIN_CONTEXT, "s") == {
        "v": _native(_expression(expr)(**PLAIN_CONTEXT))}


@pytest.mark.parametrize("expr", ["missing", "input.missing", "n.x", "steps.nope.output"])
def test_a_plain_path_to_nothing_fails_as_jinja_fails(expr):
    with pytest.raises(RenderError, match=r"undefined|has no attribute"):
        render_payload({"v": f"{{{{ {expr} }}}}"}, PLAIN_CONTEXT, "s")
