"""The seed's proposal-created definition, accepted verbatim and run over the SQL API alone."""

from __future__ import annotations

from wfsql import SEED_INPUT, claim, complete, define, enqueue, run_status, seed_definition, step_statuses


def test_seed_definition_is_accepted_verbatim(conn):
    assert define(conn, seed_definition()) == 1


def test_seed_workflow_runs_to_completion_over_sql(conn):
    define(conn, seed_definition())
    run_id = enqueue(conn, "proposal-created", SEED_INPUT)

    [thread] = claim(conn, "messages")
    assert (thread["step"], thread["action"], thread["attempt"]) == ("create_thread", "create_proposal_thread", 1)
    assert thread["payload_template"]["proposalId"] == "{{proposal_id}}"
    assert thread["context"]["input"] == SEED_INPUT
    assert claim(conn, "send-email") == []  # the second step waits for the first
    assert complete(conn, thread, {"thread_id": "t-9"})

    [email] = claim(conn, "send-email")
    assert email["step"] == "notify_host"
    assert email["context"]["steps"]["create_thread"]["output"] == {"thread_id": "t-9"}
    assert complete(conn, email, {"sent": True})

    assert run_status(conn, run_id) == "completed"
    assert step_statuses(conn, run_id) == {"create_thread": "succeeded", "notify_host": "succeeded"}
