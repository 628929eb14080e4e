"""Regression tests: one per bug found in the SQL, named after the bug."""

from __future__ import annotations

from wfsql import define, enqueue


def test_default_filter_made_a_template_variable_required(conn):
    # the check used `\b`, which PostgreSQL regexes read as a backspace, not a word boundary
    define(conn, {"name": "w", "steps": [{"name": "a", "function": "echo", "action": "go",
                                          "payload_template": {"n": "{{ nick | default('x') }}",
                                                               "m": "{{ name|d('y') }}"}}]})
    assert conn.execute("select input_vars from wf.definitions").fetchone()["input_vars"] == []
    assert enqueue(conn, "w", {})
