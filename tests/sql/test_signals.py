"""wait_for steps and wf.signal: a signal kept until a step waits for it, a waiting step completed
by its signal, timeouts (the timer message, wf.tick), and what wf.signal refuses."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb
from wfsql import (
    claim,
    complete,
    counts,
    define,
    enqueue,
    event_kinds,
    make_visible,
    messages,
    run_status,
    step_row,
    step_statuses,
)

APPROVED = {"by": "ops", "ok": True}


def waiting_workflow(conn: psycopg.Connection, timeout_seconds: int | None = None, **approve: Any) -> str:
    """approve (wait_for signal "approved") → after (an echo call); started, not yet claimed."""
    wait_for: dict[str, Any] = {"signal": "approved"}
    if timeout_seconds is not None:
        wait_for["timeout_seconds"] = timeout_seconds
    define(conn, {"name": "approval", "steps": [
        {"name": "approve", "wait_for": wait_for, **approve},
        {"name": "after", "function": "echo", "action": "go"},
    ]})
    return enqueue(conn, "approval")


def start_waiting(conn: psycopg.Connection, timeout_seconds: int | None = None, **approve: Any) -> str:
    """A run whose approve step waits for its signal (its message claimed on the internal stage)."""
    run_id = waiting_workflow(conn, timeout_seconds, **approve)
    assert claim(conn, "_wf") == []
    assert step_row(conn, run_id, "approve")["status"] == "running"
    return run_id


def signal(conn: psycopg.Connection, run_id: str | None, name: str | None, payload: Any = None) -> bool:
    return conn.execute("select wf.signal(%s, %s, %s) as ok",
                        (run_id, name, Jsonb(APPROVED if payload is None else payload))).fetchone()["ok"]


def signals(conn: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    return conn.execute("select name, payload, consumed_by, consumed_at from wf.signals where run_id = %s order by id",
                        (run_id,)).fetchall()


def time_out(conn: psycopg.Connection, run_id: str, step: str = "approve") -> None:
    """Simulate time: the step's wait is over (wake_at back-dated)."""
    conn.execute("update wf.steps set wake_at = now() - interval '1 second' where run_id = %s and name = %s",
                 (run_id, step))


# --- a signal meets its step ---------------------------------------------------------------------


def test_signal_sent_before_the_step_waits_is_kept(conn: psycopg.Connection) -> None:
    run_id = waiting_workflow(conn)
    assert signal(conn, run_id, "approved")
    [kept] = signals(conn, run_id)
    assert (kept["payload"], kept["consumed_at"]) == (APPROVED, None)
    assert step_row(conn, run_id, "approve")["status"] == "queued"


def test_signal_sent_before_the_step_waits_is_consumed_when_it_starts_waiting(conn: psycopg.Connection) -> None:
    run_id = waiting_workflow(conn)
    signal(conn, run_id, "approved")
    assert claim(conn, "_wf") == []  # handled inside the claim, no worker slot
    row = step_row(conn, run_id, "approve")
    assert (row["status"], row["output"], row["wake_at"]) == ("succeeded", APPROVED, None)
    [consumed] = signals(conn, run_id)
    assert consumed["consumed_by"] == "approve" and consumed["consumed_at"] is not None
    assert [t["step"] for t in claim(conn, "echo")] == ["after"]


def test_signal_while_waiting_completes_the_step_with_the_payload_as_output(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 3600)
    assert signal(conn, run_id, "approved")
    row = step_row(conn, run_id, "approve")
    assert (row["status"], row["output"], row["wake_at"]) == ("succeeded", APPROVED, None)
    assert signals(conn, run_id)[0]["consumed_by"] == "approve"
    assert messages(conn, "_wf") == []  # the timer is gone with the step's message


def test_run_goes_on_after_the_signal(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn)
    signal(conn, run_id, "approved")
    [after] = claim(conn, "echo")
    assert after["step"] == "after"
    assert after["context"]["steps"]["approve"]["output"] == APPROVED
    complete(conn, after)
    assert run_status(conn, run_id) == "completed"


def test_signal_of_another_name_does_not_complete_the_waiting_step(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn)
    assert signal(conn, run_id, "rejected")
    assert step_row(conn, run_id, "approve")["status"] == "running"
    assert signals(conn, run_id)[0]["consumed_at"] is None


def test_second_signal_is_kept_not_consumed(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn)
    signal(conn, run_id, "approved", {"n": 1})
    assert signal(conn, run_id, "approved", {"n": 2})
    assert step_row(conn, run_id, "approve")["output"] == {"n": 1}
    assert [s["consumed_by"] for s in signals(conn, run_id)] == ["approve", None]


def test_signal_to_a_finished_run_returns_false_and_stores_nothing(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn)
    conn.execute("select wf.cancel(%s)", (run_id,))
    assert signal(conn, run_id, "approved") is False
    assert signals(conn, run_id) == []
    assert ("signal_received", None) not in event_kinds(conn, run_id)


def test_signal_to_an_unknown_run_raises_p0002(conn: psycopg.Connection) -> None:
    with pytest.raises(errors.NoDataFound, match="unknown run 00000000-0000-0000-0000-000000000000"):
        signal(conn, "00000000-0000-0000-0000-000000000000", "approved")


# --- timeouts ------------------------------------------------------------------------------------


def test_waiting_step_sets_its_timer_to_the_timeout(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 600)
    [timer] = messages(conn, "_wf")
    assert 590 < timer["wait"] <= 600
    assert timer["msg_id"] == step_row(conn, run_id, "approve")["msg_id"]
    wake_in = conn.execute("select extract(epoch from wake_at - now())::float as s from wf.steps where run_id = %s "
                           "and name = 'approve'", (run_id,)).fetchone()["s"]
    assert 590 < wake_in <= 601


def test_waiting_step_without_a_timeout_keeps_no_timer(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn)
    assert messages(conn, "_wf") == []
    assert step_row(conn, run_id, "approve")["wake_at"] is None


def test_timeout_by_the_timer_message_fails_the_step_naming_the_signal(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 60)
    time_out(conn, run_id)
    make_visible(conn, "_wf")
    assert claim(conn, "_wf") == []
    row = step_row(conn, run_id, "approve")
    assert row["status"] == "dead"
    assert row["error"] == 'no signal "approved" within 60 seconds'
    assert run_status(conn, run_id) == "failed"
    assert step_statuses(conn, run_id)["after"] == "cancelled"
    assert messages(conn, "_wf") == []


def test_timeout_is_not_retried(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 60, max_retries=5)
    time_out(conn, run_id)
    make_visible(conn, "_wf")
    claim(conn, "_wf")
    assert step_row(conn, run_id, "approve")["status"] == "dead"
    assert [k for k, _ in event_kinds(conn, run_id, "approve")] == ["started", "dead", "run_failed"]


def test_timeout_with_on_failure_continue_lets_the_fallback_step_run(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 60, on_failure="continue")
    time_out(conn, run_id)
    make_visible(conn, "_wf")
    claim(conn, "_wf")
    approve = step_row(conn, run_id, "approve")
    assert (approve["status"], approve["error"]) == ("failed", 'no signal "approved" within 60 seconds')
    [fallback] = claim(conn, "echo")
    assert fallback["step"] == "after"
    assert fallback["context"]["steps"]["approve"]["status"] == "failed"
    complete(conn, fallback)
    assert run_status(conn, run_id) == "completed"


def test_timer_message_back_before_its_time_does_not_time_out(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 3600)
    make_visible(conn, "_wf")  # wake_at is still an hour ahead
    assert claim(conn, "_wf") == []
    assert step_row(conn, run_id, "approve")["status"] == "running"
    assert signal(conn, run_id, "approved")
    assert step_row(conn, run_id, "approve")["status"] == "succeeded"


def test_tick_times_out_a_waiting_step_without_any_claim_of_the_timer(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 60, on_failure="continue")
    time_out(conn, run_id)
    result = conn.execute("select wf.tick() as r").fetchone()["r"]
    assert result["timed_out"] == 1
    approve = step_row(conn, run_id, "approve")
    assert (approve["status"], approve["error"], approve["wake_at"]) == (
        "failed", 'no signal "approved" within 60 seconds', None)
    assert messages(conn, "_wf") == []  # the timer left with the step
    assert [t["step"] for t in claim(conn, "echo")] == ["after"]


def test_tick_leaves_a_step_whose_time_has_not_come(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 3600)
    assert conn.execute("select wf.tick() as r").fetchone()["r"]["timed_out"] == 0
    assert step_row(conn, run_id, "approve")["status"] == "running"


def test_signal_after_the_timeout_does_not_change_the_failed_step(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 60, on_failure="continue")
    time_out(conn, run_id)
    conn.execute("select wf.tick()")
    assert signal(conn, run_id, "approved")  # the run goes on: the signal is kept
    assert step_row(conn, run_id, "approve")["status"] == "failed"
    assert signals(conn, run_id)[0]["consumed_at"] is None


def test_tick_clears_the_timer_of_a_cancelled_waiting_step(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 60)
    conn.execute("select wf.cancel(%s)", (run_id,))
    time_out(conn, run_id)
    assert conn.execute("select wf.tick() as r").fetchone()["r"]["timed_out"] == 0
    row = step_row(conn, run_id, "approve")
    assert (row["status"], row["wake_at"]) == ("cancelled", None)


# --- a waiting step uses no worker ---------------------------------------------------------------


def test_waiting_step_holds_no_lease(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 3600)
    row = step_row(conn, run_id, "approve")
    assert (row["status"], row["attempt"], row["lease_until"]) == ("running", 1, None)


def test_waiting_step_is_not_returned_by_claim(conn: psycopg.Connection) -> None:
    waiting_workflow(conn, 3600)
    assert claim(conn, "_wf") == []
    make_visible(conn, "_wf")
    assert claim(conn, "_wf") == []


def test_waiting_step_is_not_dead_lettered_by_tick(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn)
    conn.execute("update wf.steps set started_at = now() - interval '1 day' where run_id = %s", (run_id,))
    assert conn.execute("select wf.tick() as r").fetchone()["r"]["dead_lettered"] == 0
    assert step_row(conn, run_id, "approve")["status"] == "running"


def test_runs_overview_shows_the_signal_a_step_waits_for(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn)
    row = conn.execute("select current_steps from wf.runs_overview where run_id = %s", (run_id,)).fetchone()
    assert row["current_steps"] == 'approve: waiting for signal "approved"'


def test_waiting_event_names_the_signal_and_the_timeout(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn, 60)
    detail = conn.execute("select detail from wf.events where run_id = %s and kind = 'started'",
                          (run_id,)).fetchone()["detail"]
    assert detail == {"waiting_for": "approved", "timeout_seconds": 60}


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "message"), [
    ("a" * 101, "signal name must be 1 to 100 characters, got 101 characters"),
    ("", "signal name must be 1 to 100 characters, got 0 characters"),
    (None, "signal name must be 1 to 100 characters, got null"),
])
def test_bad_signal_name_is_refused_and_nothing_stored(conn: psycopg.Connection, name: str | None,
                                                       message: str) -> None:
    run_id = start_waiting(conn)
    with pytest.raises(errors.InvalidParameterValue, match=message):
        signal(conn, run_id, name)
    assert counts(conn, "wf.signals") == {"wf.signals": 0}
    assert step_row(conn, run_id, "approve")["status"] == "running"


def test_null_run_id_is_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="run_id must not be null"):
        signal(conn, None, "approved")


def test_null_payload_is_refused(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn)
    with pytest.raises(errors.InvalidParameterValue, match="payload must be JSON, not null"):
        conn.execute("select wf.signal(%s, 'approved', null)", (run_id,))
    assert counts(conn, "wf.signals") == {"wf.signals": 0}


def test_payload_over_max_input_bytes_is_refused_and_nothing_stored(conn: psycopg.Connection) -> None:
    run_id = start_waiting(conn)
    conn.execute("update wf.settings set value = '100' where key = 'max_input_bytes'")
    with pytest.raises(errors.InvalidParameterValue, match=r"payload is \d+ bytes, more than the 100 allowed"):
        signal(conn, run_id, "approved", {"text": "x" * 200})
    assert counts(conn, "wf.signals") == {"wf.signals": 0}
    assert step_row(conn, run_id, "approve")["status"] == "running"
    assert "signal_received" not in [k for k, _ in event_kinds(conn, run_id)]
