"""input_schema: wf.define refuses unsupported keywords; wf.enqueue (and so triggers and
schedules) rejects input that breaks the schema, naming the JSON path, and stores nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest
from psycopg import errors
from wfsql import counts, define, enqueue

RUN_TABLES = ("wf.runs", "wf.steps", "wf.events")


def with_schema(schema: Any, name: str = "signup") -> dict[str, Any]:
    return {"name": name, "input_schema": schema,
            "steps": [{"name": "send", "function": "echo", "action": "send"}]}


def rejects(conn, schema: dict[str, Any], value: Any) -> str:
    """Enqueue {"v": value} under {"properties": {"v": schema}}; the error message."""
    define(conn, with_schema({"type": "object", "properties": {"v": schema}}))
    with pytest.raises(errors.InvalidParameterValue) as caught:
        enqueue(conn, "signup", {"v": value})
    assert counts(conn, *RUN_TABLES) == dict.fromkeys(RUN_TABLES, 0)
    return str(caught.value.diag.message_primary)


def accepts(conn, schema: dict[str, Any], value: Any) -> None:
    define(conn, with_schema({"type": "object", "properties": {"v": schema}}))
    enqueue(conn, "signup", {"v": value})


# one (keyword schema, a value it accepts, a value it rejects, the message's end) per keyword
CASES = [
    ({"type": "string"}, "a", 1, "input.v: must be of type string, got number"),
    ({"type": "integer"}, 3, 3.5, "input.v: must be of type integer, got a number with a fraction"),
    ({"type": ["string", "null"]}, None, True, "input.v: must be of type string or null, got boolean"),
    ({"enum": ["a", "b"]}, "b", "c", 'input.v: must be one of ["a", "b"], got "c"'),
    ({"const": 7}, 7, 8, "input.v: must be 7"),
    ({"minimum": 1}, 1, 0, "input.v: must be at least 1, got 0"),
    ({"maximum": 10}, 10, 11, "input.v: must be at most 10, got 11"),
    ({"exclusiveMinimum": 1}, 2, 1, "input.v: must be more than 1, got 1"),
    ({"exclusiveMaximum": 10}, 9, 10, "input.v: must be less than 10, got 10"),
    ({"minLength": 2}, "ab", "a", "input.v: must be at least 2 characters long, got 1"),
    ({"maxLength": 2}, "ab", "abc", "input.v: must be at most 2 characters long, got 3"),
    ({"pattern": "^[A-Z]{3}$"}, "EUR", "eur", 'input.v: does not match pattern "^[A-Z]{3}$"'),
    ({"format": "date-time"}, "2026-12-24T09:00:00Z", "2026-02-30T09:00:00Z",
     'input.v: does not match format "date-time"'),
    ({"format": "date"}, "2026-12-24", "24/12/2026", 'input.v: does not match format "date"'),
    ({"format": "email"}, "ana@example.com", "ana@example", 'input.v: does not match format "email"'),
    ({"format": "uuid"}, "0193f1a2-0000-7000-8000-000000000000", "0193f1a2", 'input.v: does not match format "uuid"'),
    ({"format": "uri"}, "https://example.com/x", "example.com x", 'input.v: does not match format "uri"'),
    ({"items": {"type": "integer"}}, [1, 2], [1, "2"], "input.v[1]: must be of type integer, got string"),
    ({"minItems": 1}, [1], [], "input.v: must have at least 1 items, got 0"),
    ({"maxItems": 1}, [1], [1, 2], "input.v: must have at most 1 items, got 2"),
    ({"uniqueItems": True}, [1, 2], [1, 1], "input.v: items must be unique"),
    ({"required": ["email"]}, {"email": "x"}, {}, "input.v: is missing required property email"),
    ({"properties": {"email": {"format": "email"}}}, {"email": "a@b.co"}, {"email": "nope"},
     'input.v.email: does not match format "email"'),
    ({"additionalProperties": False}, {}, {"x": 1}, "input.v.x: is not an allowed property"),
    ({"additionalProperties": {"type": "string"}}, {"x": "1"}, {"x": 1},
     "input.v.x: must be of type string, got number"),
]
IDS = [f"{next(iter(case[0]))}-{i}" for i, case in enumerate(CASES)]


@pytest.mark.parametrize(("schema", "good", "bad", "message"), CASES, ids=IDS)
def test_each_schema_keyword_accepts_a_conforming_value(conn, schema, good, bad, message):
    accepts(conn, schema, good)
    assert counts(conn, "wf.runs")["wf.runs"] == 1


@pytest.mark.parametrize(("schema", "good", "bad", "message"), CASES, ids=IDS)
def test_each_schema_keyword_rejects_a_breaking_value_naming_the_path(conn, schema, good, bad, message):
    assert rejects(conn, schema, bad) == f"workflow signup: {message}"


def test_nested_path_names_the_object_and_the_item(conn):
    define(conn, with_schema({"type": "object", "required": ["guest"], "properties": {
        "guest": {"type": "object", "properties": {"emails": {"type": "array", "items": {"format": "email"}}}}}}))
    with pytest.raises(errors.InvalidParameterValue, match=r'input\.guest\.emails\[1\]: does not match format "email"'):
        enqueue(conn, "signup", {"guest": {"emails": ["a@b.co", "not-an-email"]}})


def test_missing_required_properties_are_all_named(conn):
    define(conn, with_schema({"type": "object", "required": ["b", "a"]}))
    with pytest.raises(errors.InvalidParameterValue, match="input: is missing required properties a, b"):
        enqueue(conn, "signup", {})


def test_a_trigger_start_is_checked_against_the_schema(conn):
    define(conn, with_schema({"type": "object", "properties": {"email": {"format": "email"}}}))
    conn.execute("create table public.signup_rows (id int primary key, email text)")
    conn.execute("create trigger t after insert on public.signup_rows for each row "
                 "execute function wf.enqueue_trigger('signup')")
    conn.execute("insert into public.signup_rows values (1, 'ana@example.com')")
    with pytest.raises(errors.InvalidParameterValue, match=r'input\.email: does not match format "email"'):
        conn.execute("insert into public.signup_rows values (2, 'nope')")
    assert counts(conn, "wf.runs")["wf.runs"] == 1


@pytest.mark.parametrize(("schema", "message"), [
    ({"oneOf": [{"type": "string"}]}, 'input_schema: unsupported keyword "oneOf"'),
    ({"properties": {"a": {"$ref": "#/x"}}}, 'input_schema.properties.a: unsupported keyword "$ref"'),
    ({"items": {"allOf": []}}, 'input_schema.items: unsupported keyword "allOf"'),
    ({"type": "text"}, "input_schema.type must be one of string, number, integer"),
    ({"format": "ipv4"}, "input_schema.format must be one of date-time, date, email, uuid, uri"),
    ({"pattern": "(unclosed"}, "input_schema.pattern is not a valid regular expression"),
    ({"minLength": -1}, "input_schema.minLength must be a non-negative integer"),
    ({"required": "email"}, "input_schema.required must be an array of property names"),
    ({"enum": []}, "input_schema.enum must be a non-empty array"),
    ({"properties": {"a": 3}}, "input_schema.properties.a must be a JSON Schema object"),
    ([], "input_schema must be a JSON Schema object"),
])
def test_define_refuses_a_schema_it_would_not_enforce(conn, schema, message):
    with pytest.raises(errors.InvalidParameterValue, match=re.escape(f"workflow signup: {message}")):
        define(conn, with_schema(schema))
    assert counts(conn, "wf.definitions")["wf.definitions"] == 0


def test_annotations_are_accepted_and_not_enforced(conn):
    define(conn, with_schema({"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Signup",
                              "description": "who signed up", "type": "object",
                              "properties": {"plan": {"type": "string", "default": "free", "examples": ["pro"]}}}))
    enqueue(conn, "signup", {})
    assert counts(conn, "wf.runs")["wf.runs"] == 1
