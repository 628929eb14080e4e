"""Concurrency keys and debounce (DESIGN §11): at most `limit` runs per key value run, the others wait
first in first out and start in the transaction that ends a run; a debounced enqueue takes over the run
with its key that has not started yet; an idempotency key that found its run wins over debounce."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg import errors
from wfsql import claim, complete, counts, define, enqueue, messages, run_status


def keyed(conn, limit: int = 1, **extra: Any) -> None:
    define(conn, {"name": "sync", "concurrency": {"key": "listing_id", "limit": limit}, **extra,
                  "steps": [{"name": "push", "function": "echo", "action": "push"}]})


def queued_runs(conn) -> set[str]:
    return {m["message"]["run_id"] for m in messages(conn, "echo")}


def held(conn, run_id: str) -> bool:
    return conn.execute("select held from wf.runs where id = %s", (run_id,)).fetchone()["held"]


def finish(conn, run_id: str) -> None:
    [task] = [t for t in claim(conn, "echo", 100) if str(t["run_id"]) == run_id]
    complete(conn, task, {})


def test_a_second_run_with_the_same_key_waits_until_the_first_ends(conn):
    keyed(conn)
    first, second = enqueue(conn, "sync", {"listing_id": 42}), enqueue(conn, "sync", {"listing_id": 42})
    assert queued_runs(conn) == {first} and held(conn, second)
    overview = conn.execute("select status, current_steps from wf.runs_overview where run_id = %s",
                            (second,)).fetchone()
    assert overview == {"status": "pending", "current_steps": "waiting for concurrency key listing_id=42"}
    finish(conn, first)
    assert run_status(conn, first) == "completed"
    assert queued_runs(conn) == {second} and not held(conn, second)  # in the same transaction


def test_waiting_runs_start_first_in_first_out(conn):
    keyed(conn)
    runs = [enqueue(conn, "sync", {"listing_id": 7, "n": i}) for i in range(4)]
    for i in range(3):
        finish(conn, runs[i])
        assert queued_runs(conn) == {runs[i + 1]}


def test_other_keys_do_not_wait(conn):
    keyed(conn)
    a, b = enqueue(conn, "sync", {"listing_id": 1}), enqueue(conn, "sync", {"listing_id": 2})
    assert queued_runs(conn) == {a, b}


def test_the_limit_is_per_key(conn):
    keyed(conn, limit=2)
    runs = [enqueue(conn, "sync", {"listing_id": 5}) for _ in range(3)]
    assert queued_runs(conn) == set(runs[:2]) and held(conn, runs[2])


def test_a_run_cancelled_while_waiting_frees_nothing_and_blocks_nothing(conn):
    keyed(conn)
    first, second, third = (enqueue(conn, "sync", {"listing_id": 9}) for _ in range(3))
    conn.execute("select wf.cancel(%s)", (second,))
    assert queued_runs(conn) == {first}  # cancelling a waiting run started nobody
    finish(conn, first)
    assert queued_runs(conn) == {third}


def test_cancelling_the_running_run_starts_the_next(conn):
    keyed(conn)
    first, second = enqueue(conn, "sync", {"listing_id": 3}), enqueue(conn, "sync", {"listing_id": 3})
    conn.execute("select wf.cancel(%s)", (first,))
    assert queued_runs(conn) == {second}


def test_an_input_without_the_key_shares_the_null_bucket(conn):
    keyed(conn)
    first, second = enqueue(conn, "sync", {}), enqueue(conn, "sync", {"other": 1})
    assert queued_runs(conn) == {first} and held(conn, second)


# ---- debounce ------------------------------------------------------------------------------------


def debounced(conn) -> None:
    define(conn, {"name": "sync", "debounce": {"key": "listing_id", "seconds": 30},
                  "steps": [{"name": "push", "function": "echo", "action": "push"}]})


def test_repeated_enqueues_with_one_key_become_one_run_with_the_last_input(conn):
    debounced(conn)
    runs = [enqueue(conn, "sync", {"listing_id": 42, "edit": i}) for i in range(20)]
    assert len(set(runs)) == 1
    run = conn.execute("select status, input, run_at - now() as delay from wf.runs").fetchone()
    assert (run["status"], run["input"]) == ("scheduled", {"listing_id": 42, "edit": 19})
    assert 29 <= run["delay"].total_seconds() <= 30
    [message] = messages(conn, "echo")  # one message, due when the run starts
    assert message["wait"] > 25
    assert [k["kind"] for k in conn.execute("select kind from wf.events order by id")].count("run_debounced") == 19


def test_another_key_is_another_run(conn):
    debounced(conn)
    assert enqueue(conn, "sync", {"listing_id": 1}) != enqueue(conn, "sync", {"listing_id": 2})


def test_once_the_run_started_a_new_enqueue_makes_a_new_run(conn):
    debounced(conn)
    first = enqueue(conn, "sync", {"listing_id": 1})
    conn.execute("update wf.runs set status = 'running'")
    assert enqueue(conn, "sync", {"listing_id": 1}) != first


def test_an_idempotency_key_that_found_its_run_wins_over_debounce(conn):
    debounced(conn)
    first = enqueue(conn, "sync", {"listing_id": 1}, key="edit-1")
    assert enqueue(conn, "sync", {"listing_id": 1}, key="edit-1") == first
    assert conn.execute("select count(*) as n from wf.events where kind = 'run_debounced'").fetchone()["n"] == 0
    # a new idempotency key with the same debounce key is debounced into the run
    assert enqueue(conn, "sync", {"listing_id": 1, "v": 2}, key="edit-2") == first
    assert counts(conn, "wf.runs") == {"wf.runs": 1}


@pytest.mark.parametrize(("extra", "message"), [
    ({"concurrency": {"key": "listing id", "limit": 1}}, "concurrency.key must be a dotted path"),
    ({"concurrency": {"key": "a..b", "limit": 1}}, "concurrency.key must be a dotted path"),
    ({"concurrency": {"key": "listing_id", "limit": 0}}, "concurrency.limit must be an integer between 1 and 10000"),
    ({"concurrency": {"key": "listing_id", "max": 1}}, "concurrency must be an object like"),
    ({"debounce": {"key": "listing_id", "seconds": 0}}, "debounce.seconds must be an integer between 1 and 86400"),
    ({"debounce": {"key": "listing_id", "seconds": 86401}}, "debounce.seconds must be an integer between 1 and 86400"),
    ({"debounce": {"key": "listing_id"}}, "debounce.seconds is required"),
    ({"debounce": {"key": 3, "seconds": 5}}, "debounce.key must be a dotted path"),
])
def test_bad_flow_control_is_refused_naming_the_field(conn, extra, message):
    with pytest.raises(errors.InvalidParameterValue, match=message):
        define(conn, {"name": "w", **extra, "steps": [{"name": "s", "function": "echo", "action": "go"}]})
