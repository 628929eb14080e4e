"""supabase/demo.sql: the proposal table whose pending → accepted change starts a workflow, and the SQL
function that workflow's sql step runs."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from wfsql import REPO, define


@pytest.fixture
def demo(conn):
    # demo.sql first: it allows demo.set_proposal_status, which the workflow's sql step names
    conn.execute((REPO / "supabase/demo.sql").read_text())
    define(conn, json.loads((REPO / "templates/proposal-status-change.json").read_text()))
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


# ---- demo.set_proposal_status: proposal-status-change's sql step ------------------------------------


def set_status(conn: psycopg.Connection, args: dict[str, Any]) -> dict[str, Any]:
    return conn.execute("select demo.set_proposal_status(%s) as out", (Jsonb(args),)).fetchone()["out"]


def test_set_proposal_status_is_allowed_as_a_sql_step_once_however_often_demo_sql_loads(demo):
    demo.execute((REPO / "supabase/demo.sql").read_text())
    assert demo.execute("select count(*) as n from wf.sql_steps where name = 'demo.set_proposal_status'"
                        ).fetchone()["n"] == 1


def test_set_proposal_status_sets_the_status_stamps_accepted_at_once_and_records_an_outbox_row(demo):
    run_id = "0193f1a2-0000-7000-8000-000000000001"
    args = {"proposal_id": "p-1", "status": "accepted", "run_id": run_id}
    assert set_status(demo, args) == {"proposal_id": "p-1", "status": "accepted", "found": True}
    first = demo.execute("select status, accepted_at from demo.proposal where id = 'p-1'").fetchone()
    assert first["status"] == "accepted" and first["accepted_at"] is not None
    set_status(demo, args)
    assert demo.execute("select accepted_at from demo.proposal where id = 'p-1'").fetchone()["accepted_at"] == first[
        "accepted_at"]
    rows = demo.execute("""select "function", action, webhook_id, run_id::text as run_id, payload, result
                           from demo.outbox order by id""").fetchall()
    assert rows[0] == {"function": "sql", "action": "set_proposal_status", "webhook_id": None, "run_id": run_id,
                       "payload": args, "result": {"proposal_id": "p-1", "status": "accepted", "found": True}}


def test_set_proposal_status_of_a_proposal_not_in_the_table_answers_found_false(demo):
    assert set_status(demo, {"proposal_id": "p-404", "status": "accepted"}) == {
        "proposal_id": "p-404", "status": "accepted", "found": False}


@pytest.mark.parametrize(("args", "message"), [
    ({"status": "accepted"}, "proposal_id: required"),
    ({"proposal_id": "p-1", "status": "maybe"}, "status: must be one of pending, accepted"),
])
def test_set_proposal_status_refuses_bad_args_with_a_data_error_wf_does_not_retry(demo, args, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):  # 22023: class 22
        set_status(demo, args)


def test_accepting_by_the_workflows_own_step_starts_no_second_run_but_the_trigger_still_works_after(demo):
    with demo.transaction():
        set_status(demo, {"proposal_id": "p-1", "status": "accepted"})
        assert runs(demo) == []
        demo.execute("update demo.proposal set status = 'pending' where id = 'p-1'")
        demo.execute("update demo.proposal set status = 'accepted' where id = 'p-1'")
    assert len(runs(demo)) == 1
