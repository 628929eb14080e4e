"""Run outputs: output_template rendered in SQL ({{ path }} only) when the run completes, or
the final steps' outputs; what wf.define refuses in an output_template."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors
from wfsql import (
    chain,
    claim,
    complete,
    complete_batch,
    counts,
    define,
    diamond,
    enqueue,
    fail,
    run_status,
)

DEFINITION_TABLES = ("wf.definitions", "wf.definition_steps", "wf.workflows")


def two_steps(output_template: Any = None) -> dict[str, Any]:
    """create → notify, both echo calls; the input needs `name`."""
    definition: dict[str, Any] = {"name": "thread", "steps": [
        {"name": "create", "function": "echo", "action": "create", "payload_template": {"name": "{{ name }}"}},
        {"name": "notify", "function": "echo", "action": "notify"},
    ]}
    if output_template is not None:
        definition["output_template"] = output_template
    return definition


def run_through(conn: psycopg.Connection, run_id: str, outputs: dict[str, Any]) -> None:
    """Answer every step of the run's echo calls, in order, with outputs[step] (or {})."""
    while tasks := claim(conn, "echo"):
        for task in tasks:
            complete(conn, task, outputs.get(task["step"], {}))
    assert run_status(conn, run_id) == "completed"


def output(conn: psycopg.Connection, run_id: str) -> Any:
    return conn.execute("select output from wf.runs where id = %s", (run_id,)).fetchone()["output"]


# --- output_template -----------------------------------------------------------------------------


def test_output_template_path_renders_as_the_native_value(conn: psycopg.Connection) -> None:
    define(conn, two_steps({"thread_id": "{{ steps.create.output.id }}", "meta": "{{ steps.create.output.meta }}"}))
    run_id = enqueue(conn, "thread", {"name": "Ann"})
    run_through(conn, run_id, {"create": {"id": 42, "meta": {"tags": ["a"]}}})
    assert output(conn, run_id) == {"thread_id": 42, "meta": {"tags": ["a"]}}


def test_output_template_mixed_string_renders_as_text(conn: psycopg.Connection) -> None:
    define(conn, two_steps({"summary": "thread {{ steps.create.output.id }} for {{ input.name }} ({{ name }})"}))
    run_id = enqueue(conn, "thread", {"name": "Ann"})
    run_through(conn, run_id, {"create": {"id": 42}})
    assert output(conn, run_id) == {"summary": "thread 42 for Ann (Ann)"}


def test_output_template_reaches_into_arrays_and_the_run(conn: psycopg.Connection) -> None:
    define(conn, two_steps({"second": "{{ steps.create.output.items[1] }}", "workflow": "{{ run.workflow }}",
                            "status": "{{ steps.notify.status }}", "list": ["{{ name }}", 1]}))
    run_id = enqueue(conn, "thread", {"name": "Ann"})
    run_through(conn, run_id, {"create": {"items": ["x", "y"]}})
    assert output(conn, run_id) == {"second": "y", "workflow": "thread", "status": "succeeded", "list": ["Ann", 1]}


def test_output_template_path_that_leads_nowhere_renders_null_or_empty(conn: psycopg.Connection) -> None:
    missing = "steps.create.output.missing"
    define(conn, two_steps({"id": f"{{{{ {missing} }}}}", "text": f"id=[{{{{ {missing} }}}}]"}))
    run_id = enqueue(conn, "thread", {"name": "Ann"})
    run_through(conn, run_id, {})
    assert output(conn, run_id) == {"id": None, "text": "id=[]"}


def test_output_is_shown_by_runs_overview(conn: psycopg.Connection) -> None:
    define(conn, two_steps({"thread_id": "{{ steps.create.output.id }}"}))
    run_id = enqueue(conn, "thread", {"name": "Ann"})
    run_through(conn, run_id, {"create": {"id": 42}})
    row = conn.execute("select output from wf.runs_overview where run_id = %s", (run_id,)).fetchone()
    assert row["output"] == {"thread_id": 42}


def test_output_is_rendered_when_the_last_answer_comes_in_a_batch(conn: psycopg.Connection) -> None:
    define(conn, two_steps({"thread_id": "{{ steps.create.output.id }}"}))
    run_id = enqueue(conn, "thread", {"name": "Ann"})
    [create] = claim(conn, "echo")
    assert complete_batch(conn, [create], [{"id": 42}]) == 1
    [notify] = claim(conn, "echo")
    assert complete_batch(conn, [notify], [{}]) == 1
    assert run_status(conn, run_id) == "completed"
    assert output(conn, run_id) == {"thread_id": 42}


def test_running_run_has_no_output(conn: psycopg.Connection) -> None:
    define(conn, two_steps({"thread_id": "{{ steps.create.output.id }}"}))
    run_id = enqueue(conn, "thread", {"name": "Ann"})
    [create] = claim(conn, "echo")
    complete(conn, create, {"id": 42})
    assert output(conn, run_id) is None


def test_failed_run_has_no_output(conn: psycopg.Connection) -> None:
    define(conn, two_steps({"thread_id": "{{ steps.create.output.id }}"}))
    run_id = enqueue(conn, "thread", {"name": "Ann"})
    [create] = claim(conn, "echo")
    fail(conn, create, "nope", retryable=False)
    assert run_status(conn, run_id) == "failed"
    assert output(conn, run_id) is None


# --- without a template: the final steps' outputs -------------------------------------------------


def test_without_template_the_output_is_the_last_steps_output(conn: psycopg.Connection) -> None:
    define(conn, chain(n=3))
    run_id = enqueue(conn, "chain")
    run_through(conn, run_id, {"s1": {"n": 1}, "s2": {"n": 2}, "s3": {"n": 3}})
    assert output(conn, run_id) == {"s3": {"n": 3}}


def test_without_template_the_output_holds_every_final_step(conn: psycopg.Connection) -> None:
    step = {"function": "echo", "action": "go"}
    define(conn, {"name": "fork", "steps": [
        {"name": "a", **step},
        {"name": "b", "depends_on": ["a"], **step},
        {"name": "c", "depends_on": ["a"], **step},
    ]})
    run_id = enqueue(conn, "fork")
    run_through(conn, run_id, {"a": {"n": "a"}, "b": {"n": "b"}, "c": {"n": "c"}})
    assert output(conn, run_id) == {"b": {"n": "b"}, "c": {"n": "c"}}


def test_without_template_a_join_is_the_only_final_step(conn: psycopg.Connection) -> None:
    define(conn, diamond())
    run_id = enqueue(conn, "diamond")
    run_through(conn, run_id, {"d": {"joined": True}})
    assert output(conn, run_id) == {"d": {"joined": True}}


def test_without_template_a_failed_final_step_under_continue_is_null(conn: psycopg.Connection) -> None:
    definition = chain(n=2)
    definition["steps"][1].update(on_failure="continue", max_retries=0)
    define(conn, definition)
    run_id = enqueue(conn, "chain")
    [s1] = claim(conn, "echo")
    complete(conn, s1, {"n": 1})
    [s2] = claim(conn, "echo")
    fail(conn, s2, "nope", retryable=False)
    assert run_status(conn, run_id) == "completed"
    assert output(conn, run_id) == {"s2": None}


# --- define --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("template", "message"), [
    ({"x": "{{ name | upper }}"}, r"only \{\{ path \}\} expressions are supported here \(no filters or operators\)"),
    ({"x": "{{ a + b }}"}, r"no filters or operators\), got \{\{ a \+ b \}\}"),
    ({"x": "{{ steps['create'] }}"}, "no filters or operators"),
    ({"x": "{% if name %}yes{% endif %}"}, r"only \{\{ path \}\} expressions are supported here, got \{% if name"),
    ({"x": "{# note #}{{ name }}"}, r"only \{\{ path \}\} expressions are supported here, got \{# note"),
    ({"nested": [{"x": "{{ name | default('n') }}"}]}, "no filters or operators"),
    ({"x": "{{ name "}, "template does not parse"),
], ids=["filter", "operator", "subscript_string", "statement", "comment", "nested_filter", "unbalanced"])
def test_define_refuses_output_template_beyond_paths(shared_conn: psycopg.Connection, template: Any,
                                                     message: str) -> None:
    with pytest.raises(errors.InvalidParameterValue, match=rf"workflow thread: output_template: .*{message}"):
        define(shared_conn, two_steps(template))
    assert counts(shared_conn, *DEFINITION_TABLES) == dict.fromkeys(DEFINITION_TABLES, 0)


def test_define_stores_the_output_template(conn: psycopg.Connection) -> None:
    template = {"thread_id": "{{ steps.create.output.id }}"}
    define(conn, two_steps(template))
    row = conn.execute("select output_template from wf.definitions where workflow = 'thread'").fetchone()
    assert row["output_template"] == template


# --- a string with several expressions (wf.template_vars took `{{ a }} … {{ b }}` as one) --------


def test_output_template_with_several_expressions_and_brackets_between_is_accepted(conn: psycopg.Connection) -> None:
    assert define(conn, two_steps({"x": "{{ name }} (id {{ steps.create.output.id }}) [{{ run.id }}]"})) == 1


def test_define_collects_every_input_variable_of_a_string_with_several_expressions(conn: psycopg.Connection) -> None:
    define(conn, {"name": "greet", "steps": [
        {"name": "a", "function": "echo", "action": "go",
         "payload_template": {"text": "Hi {{ first }} and {{ second }}"}},
    ]})
    row = conn.execute("select input_vars from wf.definitions where workflow = 'greet'").fetchone()
    assert sorted(row["input_vars"]) == ["first", "second"]
    with pytest.raises(errors.InvalidParameterValue, match="input is missing variable"):
        enqueue(conn, "greet", {"first": "Ann"})


def test_define_refuses_a_stray_delimiter_between_two_expressions(shared_conn: psycopg.Connection) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="template does not parse"):
        define(shared_conn, two_steps({"x": "{{ name }} }} {{ steps.create.output.id }}"}))
