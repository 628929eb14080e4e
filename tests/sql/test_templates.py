"""Every definition in templates/ loads, and the use cases have the steps the research prompt lists."""

from __future__ import annotations

import json

import pytest
from wfsql import REPO, define

TEMPLATES = sorted((REPO / "templates").rglob("*.json"))
USE_CASE_STEPS = {
    "proposal-created": 2,
    "proposal-status-change": 7,
    "user-signup": 7,
    "virtual-meeting-accepted": 7,
    "listing-published": 6,
}


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.stem for p in TEMPLATES])
def test_template_is_accepted_by_define(conn, path):
    assert define(conn, json.loads(path.read_text())) == 1


@pytest.mark.parametrize("workflow, steps", USE_CASE_STEPS.items())
def test_use_case_template_has_the_listed_number_of_steps(workflow, steps):
    definition = json.loads((REPO / "templates" / f"{workflow}.json").read_text())
    assert len(definition["steps"]) == steps


def test_patterns_cover_delay_fan_in_when_and_retry_delays():
    patterns = [json.loads(p.read_text()) for p in (REPO / "templates/patterns").glob("*.json")]
    steps = [s for d in patterns for s in d["steps"]]
    assert any(s.get("delay_seconds") == 86400 for s in steps)
    assert any(len(s.get("depends_on", [])) >= 3 for s in steps)
    assert any("steps.sms.status == 'failed'" in s.get("when", "") for s in steps)
    assert any(d.get("backoff") == {"delays": [60, 300, 900]} for d in patterns)
