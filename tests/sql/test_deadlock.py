"""The claim / late-answer deadlock (issue 14), reproduced deterministically, and its fix.

A lost attempt's message becomes visible again. A worker's batch answer for that attempt
(wf.complete_batch) takes the run's lock and then archives the message; a claim of the same
message (wf.claim) holds the message's row (pgmq.read) and then takes the run's lock. When the
answer gets the run's lock first and the claim the message first, each waits for the other
until PostgreSQL's deadlock detector aborted one of them. A claim now never waits for a run's lock
while it holds messages: it gives the messages of a locked run back (sql/functions/claim.sql).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from psycopg.rows import dict_row
from wfsql import chain, claim, complete_batch, define, enqueue, make_visible, messages


def _waiting(conn: psycopg.Connection, n: int, unless_done: threading.Thread | None = None) -> None:
    """Poll until n other backends of this database wait for a lock (or the thread has ended)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if unless_done is not None and not unless_done.is_alive():
            return
        row = conn.execute("""select count(*) as n from pg_stat_activity
                              where datname = current_database() and wait_event_type = 'Lock'""").fetchone()
        if row["n"] >= n:
            return
        time.sleep(0.005)
    raise AssertionError(f"{n} backends never waited for a lock")


def _in_thread(db: str, errors: list[BaseException], fn: Any) -> threading.Thread:
    def run() -> None:
        try:
            with psycopg.connect(db, autocommit=True, row_factory=dict_row) as c:
                fn(c)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_claim_and_a_late_batch_answer_of_the_same_message_do_not_deadlock(db, conn):
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    [lost] = claim(conn, "echo")  # attempt 1, whose lease then runs out
    make_visible(conn, "echo")
    errors: list[BaseException] = []
    with psycopg.connect(db, row_factory=dict_row) as holder:
        # hold the run's lock so the answer and then the claim queue up behind it, in that order
        holder.execute("select pg_advisory_xact_lock(7001, hashtext(%s))", (run_id,))
        answer = _in_thread(db, errors, lambda c: complete_batch(c, [lost], [{"late": True}]))
        _waiting(conn, 1)
        claimed: list[list[dict[str, Any]]] = []
        again = _in_thread(db, errors, lambda c: claimed.append(claim(c, "echo")))
        _waiting(conn, 2, unless_done=again)  # the claim used to wait for the run behind the answer
        holder.commit()
    answer.join(30)
    again.join(30)
    assert not errors, f"{[type(e).__name__ for e in errors]}: {errors}"
    assert claimed == [[]]  # the run was busy: its message was given back, not waited for
    # the late answer counted (its attempt was still the current one) and the message it archived
    # was the one the claim gave back: nothing is left queued, the run is complete
    assert conn.execute("select status from wf.runs where id = %s", (run_id,)).fetchone()["status"] == "completed"
    assert messages(conn, "echo") == []
