"""supabase/demo.sql: the proposal table whose pending → accepted change starts a workflow."""

from __future__ import annotations

import json

import pytest
from wfsql import REPO, define


@pytest.fixture
def demo(conn):
    define(conn, json.loads((REPO / "templates/proposal-status-change.json").read_text()))
    conn.execute((REPO / "supabase/demo.sql").read_text())
    conn.execute("""insert into demo.proposal (id, guest_id, host_id, listing_id, guest_email, guest_phone)
                    values ('p-1', 'g-1', 'h-1', 'l-1', 'g@example.com', '+14155550100')""")
    return conn


def runs(conn):
    return conn.execute("select input, idempotency_key from wf.runs order by created_at").fetchall()


def test_accepting_a_pending_proposal_starts_the_status_change_workflow(demo):
    demo.execute("update demo.proposal set status = 'accepted' where id = 'p-1'")
    [run] = runs(demo)
    assert run["input"]["id"] == "p-1"
    assert run["input"]["status"] == "accepted"
    assert run["input"]["_op"] == "UPDATE"
    assert run["input"]["_table"] == "demo.proposal"
    assert run["input"]["_old"]["status"] == "pending"
    assert run["idempotency_key"].startswith("demo.proposal:p-1:UPDATE:")


def test_other_changes_of_a_proposal_start_nothing(demo):
    demo.execute("update demo.proposal set guest_email = 'new@example.com' where id = 'p-1'")
    demo.execute("update demo.proposal set status = 'declined' where id = 'p-1'")
    assert runs(demo) == []


def test_the_demo_schema_loads_twice(demo):
    demo.execute((REPO / "supabase/demo.sql").read_text())
    assert demo.execute("select value from demo.flags where key = 'bubble_api_key_valid'").fetchone()["value"] is True


def test_a_row_accepted_twice_in_one_transaction_starts_two_runs_instead_of_failing_the_update(demo):
    # the trigger's idempotency key (table, key, operation, transaction) is the same for both
    # changes; a different input under the same key must not abort the user's statement
    with demo.transaction():
        demo.execute("update demo.proposal set status = 'accepted' where id = 'p-1'")
        demo.execute("update demo.proposal set status = 'pending', guest_phone = '+14155550111' where id = 'p-1'")
        demo.execute("update demo.proposal set status = 'accepted' where id = 'p-1'")
    keys = [r["idempotency_key"] for r in runs(demo)]
    assert len(keys) == 2
    assert keys[1] == keys[0] + ":2"
