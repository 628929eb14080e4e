"""Regression: `wf worker --once` returned while a step was still ready.

Two parallel steps finishing during the last claim round queued the step waiting for both,
in a stage the round had already looked at; with no task in flight the worker exited.
"""

from __future__ import annotations

import pytest
from wfproc import run_once
from wfsql import define, enqueue, run_status


def diamond_across_stages() -> dict:
    return {"name": "d2", "steps": [
        {"name": "a", "function": "echo", "action": "go"},
        {"name": "b", "function": "noop", "action": "go", "depends_on": ["a"]},
        {"name": "c", "function": "noop", "action": "go", "depends_on": ["a"]},
        {"name": "d", "function": "clock", "action": "go", "depends_on": ["b", "c"]},
    ]}


@pytest.mark.parametrize("attempt", range(8))
def test_once_drains_a_fan_in_whose_last_step_is_in_a_stage_already_looked_at(db, conn, gateway, attempt):
    define(conn, diamond_across_stages())
    run_id = enqueue(conn, "d2", {})
    result = run_once(db, gateway.url)
    assert run_status(conn, run_id) == "completed", result.stdout
