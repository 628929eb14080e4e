"""wf.claim: exclusive claims, argument checks, orphan and malformed messages, lost attempts, poison."""

from __future__ import annotations

import threading

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from wfsql import (
    archived,
    chain,
    claim,
    define,
    dlq,
    enqueue,
    event_kinds,
    make_visible,
    messages,
    run_status,
    step_row,
    step_statuses,
)


def test_two_connections_claiming_concurrently_never_get_the_same_step(conn, db):
    define(conn, chain(n=1))
    conn.execute("select wf.enqueue('chain') from generate_series(1, 300)")
    start = threading.Barrier(2)
    got: dict[int, list[tuple[str, str]]] = {0: [], 1: []}

    def worker(i: int) -> None:
        with psycopg.connect(db, autocommit=True, row_factory=dict_row) as c:
            start.wait()
            while batch := claim(c, "echo", 7):
                got[i].extend((str(t["run_id"]), t["step"]) for t in batch)

    threads = [threading.Thread(target=worker, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    both = got[0] + got[1]
    assert len(both) == 300
    assert len(set(both)) == 300, "a step was claimed twice"
    assert got[0] and got[1], "one connection took everything: the claims did not overlap"
    row = conn.execute(
        "select count(*) as n from wf.steps where status = 'running' and attempt = 1"
    ).fetchone()
    assert row["n"] == 300


def test_claim_returns_what_the_call_needs(conn):
    define(conn, {"name": "w", "timeout_seconds": 42, "steps": [
        {"name": "a", "function": "echo", "action": "ping", "payload_template": {"x": "{{ x }}"},
         "when": "{{ x > 1 }}"}]})
    run_id = enqueue(conn, "w", {"x": 5})
    [task] = claim(conn, "echo")
    assert {k: task[k] for k in ("step", "attempt", "function", "action", "payload_template",
                                 "when_template", "timeout_seconds", "workflow")} == {
        "step": "a", "attempt": 1, "function": "echo", "action": "ping",
        "payload_template": {"x": "{{ x }}"}, "when_template": "{{ x > 1 }}",
        "timeout_seconds": 42, "workflow": "w"}
    assert str(task["run_id"]) == run_id
    assert task["context"]["input"] == {"x": 5}
    assert task["context"]["run"] == {"id": run_id, "workflow": "w", "version": 1,
                                      "correlation_id": None, "attempt": 1}


def test_claim_starts_the_run_and_the_attempt(conn):
    define(conn, chain())
    run_id = enqueue(conn, "chain")
    claim(conn, "echo")
    assert run_status(conn, run_id) == "running"
    step = step_row(conn, run_id, "s1")
    assert (step["status"], step["attempt"]) == ("running", 1)
    assert step["lease_until"] is not None
    assert ("started", 1) in event_kinds(conn, run_id, "s1")


def test_claimed_message_stays_invisible_for_the_visibility_timeout(conn):
    define(conn, chain(timeout_seconds=60))  # visibility timeout = 60 + 15 s margin
    enqueue(conn, "chain")
    claim(conn, "echo")
    [msg] = messages(conn, "echo")
    assert 73 <= msg["wait"] <= 75
    assert claim(conn, "echo") == []


def test_claim_takes_at_most_qty_messages(conn):
    define(conn, chain(n=1))
    conn.execute("select wf.enqueue('chain') from generate_series(1, 5)")
    assert len(claim(conn, "echo", 3)) == 3
    assert len(claim(conn, "echo", 3)) == 2


def test_claim_of_an_unknown_stage_raises_naming_it(shared_conn):
    with pytest.raises(errors.NoDataFound, match="unknown stage nope"):
        claim(shared_conn, "nope")


def test_claim_of_a_null_stage_raises(shared_conn):
    with pytest.raises(errors.NoDataFound, match="unknown stage null"):
        shared_conn.execute("select * from wf.claim(null)")


@pytest.mark.parametrize("qty", [0, -1, 1001, None])
def test_claim_qty_out_of_bounds_is_rejected(shared_conn, qty):
    define(shared_conn, chain())
    got = "null" if qty is None else qty
    with pytest.raises(errors.InvalidParameterValue, match=f"qty must be between 1 and 1000, got {got}"):
        shared_conn.execute("select * from wf.claim('echo', %s::int)", (qty,))


def test_claim_qty_1000_is_accepted(conn):
    define(conn, chain())
    enqueue(conn, "chain")
    assert len(claim(conn, "echo", 1000)) == 1


def test_message_of_a_deleted_run_is_archived_and_skipped(conn):
    define(conn, chain(n=1))
    gone = enqueue(conn, "chain")
    kept = enqueue(conn, "chain")
    conn.execute("delete from wf.runs where id = %s", (gone,))
    assert [str(t["run_id"]) for t in claim(conn, "echo")] == [kept]
    assert [m["message"]["run_id"] for m in archived(conn, "echo")] == [gone]
    assert [m["message"]["run_id"] for m in messages(conn, "echo")] == [kept]


def test_malformed_message_is_archived_and_dead_lettered(conn):
    define(conn, chain(n=1))
    conn.execute("select pgmq.send('wf_echo', %s)", (Jsonb({"hello": "world"}),))
    assert claim(conn, "echo") == []
    assert messages(conn, "echo") == []
    [dead] = dlq(conn)
    assert dead["message"]["error"] == "malformed message"
    assert dead["message"]["message"] == {"hello": "world"}


def test_lost_attempt_is_recorded_and_the_next_attempt_starts(conn):
    define(conn, chain())
    run_id = enqueue(conn, "chain")
    [first] = claim(conn, "echo")
    make_visible(conn, "echo")  # the consumer died: the visibility timeout ran out
    [second] = claim(conn, "echo")
    assert (first["attempt"], second["attempt"]) == (1, 2)
    assert event_kinds(conn, run_id, "s1") == [("started", 1), ("attempt_lost", 1), ("started", 2)]
    assert step_row(conn, run_id, "s1")["attempt"] == 2


def test_poison_message_is_dead_lettered_by_claim_after_max_attempts(conn):
    define(conn, chain(max_retries=1))  # two attempts
    run_id = enqueue(conn, "chain")
    for attempt in (1, 2):
        [task] = claim(conn, "echo")
        assert task["attempt"] == attempt
        make_visible(conn, "echo")
    assert claim(conn, "echo") == []

    assert step_statuses(conn, run_id) == {"s1": "dead", "s2": "cancelled", "s3": "cancelled"}
    assert run_status(conn, run_id) == "failed"
    assert messages(conn, "echo") == []
    [dead] = dlq(conn)
    assert {k: dead["message"][k] for k in ("run_id", "step", "attempt", "workflow")} == {
        "run_id": run_id, "step": "s1", "attempt": 2, "workflow": "chain"}
    assert "no answer after 2 attempts" in dead["message"]["error"]


def test_claims_of_one_stage_leave_other_stages_alone(conn):
    define(conn, {"name": "two", "steps": [
        {"name": "a", "function": "alpha", "action": "go", "depends_on": []},
        {"name": "b", "function": "beta", "action": "go", "depends_on": []}]})
    enqueue(conn, "two")
    assert [t["step"] for t in claim(conn, "alpha")] == ["a"]
    assert [t["step"] for t in claim(conn, "beta")] == ["b"]
