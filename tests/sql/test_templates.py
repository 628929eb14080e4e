"""Every definition in templates/ loads (after supabase/demo.sql, which allows the sql step's function;
children before the parents that run them), and the use cases have the steps the research prompt lists,
using the step kinds of DESIGN §10 where they fit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
from wfsql import REPO, define, enqueue, messages

TEMPLATES = sorted((REPO / "templates").rglob("*.json"))
USE_CASE_STEPS = {
    "proposal-created": 2,
    "proposal-status-change": 7,
    "user-signup": 7,
    "signup-sync": 3,
    "virtual-meeting-accepted": 8,
    "listing-published": 6,
    "listing-approval": 5,
}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def use_case(workflow: str) -> dict[str, Any]:
    return load(REPO / "templates" / f"{workflow}.json")


def use_case_steps() -> list[dict[str, Any]]:
    return [s for workflow in USE_CASE_STEPS for s in use_case(workflow)["steps"]]


def children(definition: dict[str, Any]) -> list[str]:
    return [s["workflow"] for s in definition["steps"] if "workflow" in s]


def define_with_children(conn: psycopg.Connection, path: Path) -> int:
    """wf.define of the file's definition, the workflows its workflow steps run defined first."""
    by_name = {d["name"]: d for d in map(load, TEMPLATES)}
    definition = load(path)
    for child in children(definition):
        define(conn, by_name[child])
    return define(conn, definition)


@pytest.fixture
def demo_conn(conn: psycopg.Connection) -> psycopg.Connection:
    """A fresh database with supabase/demo.sql loaded: it allows demo.set_proposal_status as a sql step."""
    conn.execute((REPO / "supabase/demo.sql").read_text())
    return conn


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.stem for p in TEMPLATES])
def test_template_is_accepted_by_define(demo_conn, path):
    assert define_with_children(demo_conn, path) == 1


def test_the_sql_step_is_refused_until_demo_sql_allows_its_function(conn):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"demo\.set_proposal_status"):
        define(conn, use_case("proposal-status-change"))


def test_a_child_workflow_must_be_defined_before_its_parent(demo_conn):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="signup-sync"):
        define(demo_conn, use_case("user-signup"))


@pytest.mark.parametrize("workflow, steps", USE_CASE_STEPS.items())
def test_use_case_template_has_the_listed_number_of_steps(workflow, steps):
    assert len(use_case(workflow)["steps"]) == steps


def test_use_cases_use_a_sql_step_a_not_before_a_wait_with_a_fallback_and_a_child_workflow():
    steps = use_case_steps()
    # proposal-status-change records the status in the database, in the step's own transaction
    [sql_step] = [s for s in steps if "sql" in s]
    assert (sql_step["name"], sql_step["sql"]) == ("update_proposal", "demo.set_proposal_status")
    # virtual-meeting-accepted reminds the guest 24 h before the meeting
    assert any(s.get("not_before") == "{{ starts_at }}" and s.get("offset_seconds") == -86400 for s in steps)
    # listing-approval waits for a moderator at most 48 h, then goes on either way
    approval = use_case("listing-approval")["steps"]
    [wait] = [s for s in approval if "wait_for" in s]
    assert wait["wait_for"] == {"signal": "moderated", "timeout_seconds": 172800}
    assert wait["on_failure"] == "continue"
    assert any(s.get("when") == f"{{{{ steps.{wait['name']}.status == 'failed' }}}}" for s in approval)
    assert any(f"steps.{wait['name']}.output.approved" in s.get("when", "") for s in approval)
    # user-signup syncs its records through the child workflow signup-sync, which has an output
    assert children(use_case("user-signup")) == ["signup-sync"]
    assert "output_template" in use_case("signup-sync")
    assert {s["action"] for s in use_case("signup-sync")["steps"]} == {"sync_single"}


def test_listing_published_distributes_to_each_channel_with_for_each(demo_conn):
    """One distribution call per channel (a map step): the input's channels, or the seed's two by default."""
    [map_step] = [s for s in use_case_steps() if "for_each" in s]
    assert (map_step["name"], map_step["function"], map_step["action"]) == ("distribute", "distribution", "publish")
    assert map_step["for_each"] == "{{ channels | default(['partner-feed', 'newsletter']) }}"
    assert map_step["payload_template"]["channel"] == "{{ item }}"
    assert map_step in use_case("listing-published")["steps"]
    define_with_children(demo_conn, REPO / "templates/listing-published.json")
    # the default exempts channels from the input variables wf.enqueue insists on
    [row] = demo_conn.execute("select input_vars from wf.definitions where workflow = 'listing-published'").fetchall()
    assert "channels" not in row["input_vars"]
    assert "listing_id" in row["input_vars"]


def test_patterns_cover_delay_fan_in_when_retry_delays_and_compensate():
    patterns = [load(p) for p in (REPO / "templates/patterns").glob("*.json")]
    steps = [s for d in patterns for s in d["steps"]]
    assert any(s.get("delay_seconds") == 86400 for s in steps)
    assert any(len(s.get("depends_on", [])) >= 3 for s in steps)
    assert any("steps.sms.status == 'failed'" in s.get("when", "") for s in steps)
    assert any(d.get("backoff") == {"delays": [60, 300, 900]} for d in patterns)
    assert any("compensate" in s for s in steps)


def test_booking_payment_refunds_the_charge_and_releases_the_dates_with_compensate(demo_conn):
    """The saga pattern: charge and reserve each say how they are undone, the refund with the charge's own
    id; wf.define stores the compensations as steps `<step>:compensate` (run only when the run fails)."""
    path = REPO / "templates/patterns/booking-payment.json"
    steps = {s["name"]: s for s in load(path)["steps"]}
    assert list(steps) == ["charge", "reserve", "notify", "confirm"]
    refund = steps["charge"]["compensate"]
    assert (refund["function"], refund["action"]) == ("payments", "refund")
    assert refund["payload_template"]["chargeId"] == "{{ steps.charge.output.charge_id }}"
    release = steps["reserve"]["compensate"]
    assert (release["function"], release["action"]) == ("proposal", "release")
    assert not {"compensate"} & (steps["notify"].keys() | steps["confirm"].keys())
    # the host's decline is on demand, and not an input wf.enqueue insists on
    assert steps["confirm"]["payload_template"]["declined"] == "{{ fail_confirmation | default(false) }}"
    define_with_children(demo_conn, path)
    rows = demo_conn.execute("""select name, function, action, compensates from wf.definition_steps
                                where workflow = 'booking-payment' and compensates is not null
                                order by name""").fetchall()
    assert [tuple(r.values()) for r in rows] == [("charge:compensate", "payments", "refund", "charge"),
                                                 ("reserve:compensate", "proposal", "release", "reserve")]
    [row] = demo_conn.execute("select input_vars from wf.definitions where workflow = 'booking-payment'").fetchall()
    assert "fail_confirmation" not in row["input_vars"]


def test_external_sync_syncs_one_record_at_a_time_and_a_burst_of_edits_once_with_the_last_one(demo_conn):
    """The flow-control pattern (README, "Flow control"), as scripts/demo shows it: a concurrency key and
    debounce on the record's id, the debounce short enough for the demo to wait; the sync carries the
    edit's fields (none for the nightly schedule's input)."""
    path = REPO / "templates/patterns/retry-delays.json"
    definition = load(path)
    assert definition["name"] == "external-sync"
    assert definition["concurrency"] == {"key": "record_id", "limit": 1}
    assert definition["debounce"]["key"] == "record_id"
    assert 1 <= definition["debounce"]["seconds"] <= 5
    [sync] = [s for s in definition["steps"] if s["function"] == "bubble-sync"]
    assert sync["payload_template"]["fields"] == "{{ fields | default({}) }}"
    define_with_children(demo_conn, path)
    [row] = demo_conn.execute("select definition, input_vars from wf.definitions where workflow = 'external-sync'"
                              ).fetchall()
    assert row["definition"]["concurrency"] == {"key": "record_id", "limit": 1}
    assert row["definition"]["debounce"] == definition["debounce"]
    assert "fields" not in row["input_vars"]

    # 20 edits to one listing: one run, with the last edit's input, its sync not due before the debounce
    burst = {enqueue(demo_conn, "external-sync", {"table": "listing", "record_id": "l-77", "fields": {"edit": i}})
             for i in range(1, 21)}
    [run_id] = burst
    run = demo_conn.execute("select status, input from wf.runs where id = %s", (run_id,)).fetchone()
    assert run == {"status": "scheduled", "input": {"table": "listing", "record_id": "l-77", "fields": {"edit": 20}}}
    [queued] = [m for m in messages(demo_conn, "bubble-sync") if m["message"]["run_id"] == run_id]
    assert 0 < queued["wait"] <= definition["debounce"]["seconds"]
    # another record is another run
    assert enqueue(demo_conn, "external-sync", {"table": "listing", "record_id": "l-1"}) != run_id
