"""complete / fail / skip / extend: fencing, backoff on the message vt, exhaustion, on_failure."""

from __future__ import annotations

import re
import uuid

import pytest
from psycopg import errors
from wfsql import (
    archived,
    chain,
    claim,
    complete,
    complete_batch,
    define,
    diamond,
    dlq,
    enqueue,
    event_kinds,
    events,
    extend,
    fail,
    make_visible,
    messages,
    run_status,
    skip,
    step_row,
    step_statuses,
)

ANSWERS = {
    "complete": lambda c, t: complete(c, t, {"late": True}),
    "fail": lambda c, t: fail(c, t, "late failure", retryable=False),
    "skip": lambda c, t: skip(c, t, "late skip"),
    "extend": lambda c, t: extend(c, t, 3600),
}


def one_step(conn, **step: object) -> str:
    define(conn, {"name": "one", "steps": [{"name": "a", "function": "echo", "action": "go", **step}]})
    return enqueue(conn, "one")


def wait(conn) -> float:
    """Seconds until the stage's only message becomes visible again."""
    [msg] = messages(conn, "echo")
    return msg["wait"]


def fail_and_reclaim(conn, task, **kw) -> dict:
    assert fail(conn, task, **kw)
    make_visible(conn, "echo")  # the backoff has passed
    [task] = claim(conn, "echo")
    return task


# --- fencing: only the current running attempt may answer ---------------------------------------


@pytest.mark.parametrize("answer", ANSWERS.keys())
def test_late_answer_from_a_lost_attempt_changes_nothing(conn, answer):
    run_id = one_step(conn)
    [lost] = claim(conn, "echo")
    make_visible(conn, "echo")
    [current] = claim(conn, "echo")
    before_step = step_row(conn, run_id, "a")
    before_msgs = messages(conn, "echo")

    assert ANSWERS[answer](conn, lost) is False

    assert step_row(conn, run_id, "a") == before_step
    assert run_status(conn, run_id) == "running"
    after_msgs = messages(conn, "echo")
    assert [m["msg_id"] for m in after_msgs] == [m["msg_id"] for m in before_msgs]
    assert abs(after_msgs[0]["wait"] - before_msgs[0]["wait"]) < 2  # vt not moved
    assert complete(conn, current)  # the current attempt still answers


@pytest.mark.parametrize("answer", ANSWERS.keys())
def test_late_answer_is_recorded_as_a_stale_answer_event(conn, answer):
    run_id = one_step(conn)
    [lost] = claim(conn, "echo")
    make_visible(conn, "echo")
    claim(conn, "echo")
    ANSWERS[answer](conn, lost)
    [stale] = [e for e in events(conn, run_id) if e["kind"] == "stale_answer"]
    assert (stale["step"], stale["attempt"]) == ("a", 1)
    assert stale["detail"] == {"answer": answer, "step_status": "running", "current_attempt": 2}


def test_second_answer_of_the_same_attempt_is_a_no_op(conn):
    run_id = one_step(conn)
    [task] = claim(conn, "echo")
    assert complete(conn, task, {"n": 1})
    assert complete(conn, task, {"n": 2}) is False
    assert fail(conn, task) is False
    assert step_row(conn, run_id, "a")["output"] == {"n": 1}
    assert run_status(conn, run_id) == "completed"


def test_answer_for_a_step_waiting_to_retry_is_a_no_op(conn):
    run_id = one_step(conn, max_retries=2)
    [task] = claim(conn, "echo")
    fail(conn, task)
    assert complete(conn, task) is False
    assert step_row(conn, run_id, "a")["status"] == "retrying"


@pytest.mark.parametrize("answer", ANSWERS.keys())
def test_answer_for_an_unknown_run_raises_naming_it(shared_conn, answer):
    task = {"run_id": str(uuid.uuid4()), "step": "a", "attempt": 1}
    with pytest.raises(errors.NoDataFound, match=f"unknown step a of run {task['run_id']}"):
        ANSWERS[answer](shared_conn, task)


@pytest.mark.parametrize("answer", ANSWERS.keys())
def test_answer_for_an_unknown_step_raises_naming_it(conn, answer):
    run_id = one_step(conn)
    with pytest.raises(errors.NoDataFound, match=f"unknown step zz of run {run_id}"):
        ANSWERS[answer](conn, {"run_id": run_id, "step": "zz", "attempt": 1})


@pytest.mark.parametrize("answer", ANSWERS.keys())
@pytest.mark.parametrize("missing", ["run_id", "step", "attempt"])
def test_answer_with_a_null_argument_is_rejected(shared_conn, answer, missing):
    task = {"run_id": str(uuid.uuid4()), "step": "a", "attempt": 1, missing: None}
    with pytest.raises(errors.InvalidParameterValue, match=f"{answer} needs run_id, step and attempt"):
        ANSWERS[answer](shared_conn, task)


# --- backoff on the message's vt ----------------------------------------------------------------


def test_exponential_backoff_without_jitter_sets_the_message_vt(conn):
    run_id = one_step(conn, max_retries=3,
                      backoff={"base_seconds": 10, "factor": 3, "max_seconds": 3600, "jitter": False})
    [task] = claim(conn, "echo")
    waits = []
    for _ in range(3):
        assert fail(conn, task)
        waits.append(wait(conn))
        make_visible(conn, "echo")
        [task] = claim(conn, "echo")
    assert [round(w) for w in waits] == [10, 30, 90]
    assert [e["detail"]["delay_seconds"] for e in events(conn, run_id) if e["kind"] == "retrying"] == [10, 30, 90]


def test_backoff_is_capped_at_max_seconds(conn):
    one_step(conn, max_retries=3, backoff={"base_seconds": 100, "factor": 10, "max_seconds": 150, "jitter": False})
    [task] = claim(conn, "echo")
    assert fail(conn, task)
    assert round(wait(conn)) == 100
    make_visible(conn, "echo")
    [task] = claim(conn, "echo")
    assert fail(conn, task)
    assert round(wait(conn)) == 150


def test_jittered_backoff_stays_between_half_and_all_of_the_delay(conn):
    define(conn, {"name": "one", "max_retries": 3, "backoff": {"base_seconds": 100, "factor": 2},
                  "steps": [{"name": "a", "function": "echo", "action": "go"}]})
    conn.execute("select wf.enqueue('one') from generate_series(1, 20)")
    for task in claim(conn, "echo", 20):
        fail(conn, task)
    first = [m["wait"] for m in messages(conn, "echo")]
    assert all(49 <= w <= 100.5 for w in first), first
    assert len({round(w) for w in first}) > 1, "no jitter"

    make_visible(conn, "echo")
    for task in claim(conn, "echo", 20):
        fail(conn, task)
    second = [m["wait"] for m in messages(conn, "echo")]
    assert all(99 <= w <= 200.5 for w in second), second


def test_explicit_delays_are_used_in_order_then_the_last_repeats(conn):
    run_id = one_step(conn, max_retries=4, backoff={"delays": [7, 11, 13]})
    [task] = claim(conn, "echo")
    waits = []
    for _ in range(4):
        assert fail(conn, task)
        waits.append(round(wait(conn)))
        make_visible(conn, "echo")
        [task] = claim(conn, "echo")
    assert waits == [7, 11, 13, 13]
    assert step_row(conn, run_id, "a")["attempt"] == 5


def test_retry_after_is_honoured_when_larger_than_the_backoff(conn):
    one_step(conn, max_retries=2, backoff={"delays": [5]})
    [task] = claim(conn, "echo")
    assert fail(conn, task, "slow down", http_status=429, retry_after=120)
    assert round(wait(conn)) == 120


def test_retry_after_smaller_than_the_backoff_is_not_used(conn):
    one_step(conn, max_retries=2, backoff={"delays": [30]})
    [task] = claim(conn, "echo")
    assert fail(conn, task, "slow down", http_status=429, retry_after=1)
    assert round(wait(conn)) == 30


def test_retrying_step_records_the_error_and_goes_back_to_its_queue(conn):
    run_id = one_step(conn, max_retries=1, backoff={"delays": [30]})
    [task] = claim(conn, "echo")
    fail(conn, task, "upstream 503", http_status=503)
    step = step_row(conn, run_id, "a")
    assert (step["status"], step["error"], step["http_status"]) == ("retrying", "upstream 503", 503)
    assert claim(conn, "echo") == []  # not before the backoff
    make_visible(conn, "echo")
    [again] = claim(conn, "echo")
    assert again["attempt"] == 2


# --- exhaustion and on_failure ------------------------------------------------------------------


def test_exhausted_step_is_dead_in_the_dlq_and_fails_the_run_cancelling_the_rest(conn):
    definition = diamond()
    definition["steps"][1]["max_retries"] = 1  # b: two attempts
    define(conn, definition)
    run_id = enqueue(conn, "diamond")
    [a] = claim(conn, "echo")
    complete(conn, a)
    tasks = {t["step"]: t for t in claim(conn, "echo")}
    c_msg = step_row(conn, run_id, "c")["msg_id"]
    assert fail(conn, tasks["b"], "first", http_status=500)
    make_visible(conn, "echo", step_row(conn, run_id, "b")["msg_id"])  # b's backoff has passed
    [b] = claim(conn, "echo")
    assert (b["step"], b["attempt"]) == ("b", 2)
    assert fail(conn, b, "second", http_status=502)

    assert step_statuses(conn, run_id) == {"a": "succeeded", "b": "dead", "c": "running", "d": "cancelled"}
    run = conn.execute("select status, error, failed_step from wf.runs where id = %s", (run_id,)).fetchone()
    assert run == {"status": "failed", "error": "second", "failed_step": "b"}
    [dead] = dlq(conn)
    assert {k: dead["message"][k] for k in ("run_id", "step", "attempt", "error", "http_status")} == {
        "run_id": run_id, "step": "b", "attempt": 2, "error": "second", "http_status": 502}
    assert step_row(conn, run_id, "b")["dlq_msg_id"] == dead["msg_id"]
    assert c_msg in [m["msg_id"] for m in messages(conn, "echo")]  # c was running: left to answer


def test_exhaustion_cancels_queued_steps_and_removes_their_messages(conn):
    define(conn, {"name": "par", "steps": [
        {"name": "a", "function": "alpha", "action": "go", "max_retries": 0},
        {"name": "b", "function": "echo", "action": "go", "depends_on": []},
        {"name": "c", "function": "echo", "action": "go", "depends_on": ["a", "b"]}]})
    run_id = enqueue(conn, "par")
    [a] = claim(conn, "alpha")
    assert fail(conn, a)
    assert step_statuses(conn, run_id) == {"a": "dead", "b": "cancelled", "c": "cancelled"}
    assert messages(conn, "echo") == []
    assert [m["message"]["step"] for m in archived(conn, "echo")] == ["b"]
    assert ("cancelled", 0) in event_kinds(conn, run_id, "b")


def test_non_retryable_failure_skips_the_remaining_retries(conn):
    run_id = one_step(conn, max_retries=5)
    [task] = claim(conn, "echo")
    assert fail(conn, task, "400 bad request", retryable=False, http_status=400)
    assert step_row(conn, run_id, "a")["status"] == "dead"
    assert run_status(conn, run_id) == "failed"
    assert "retrying" not in [k for k, _ in event_kinds(conn, run_id)]
    assert len(dlq(conn)) == 1


def test_on_failure_continue_lets_the_run_finish(conn):
    definition = chain(n=2)
    definition["steps"][0].update(on_failure="continue", max_retries=0)
    define(conn, definition)
    run_id = enqueue(conn, "chain")
    [s1] = claim(conn, "echo")
    assert fail(conn, s1, "nope", http_status=404)
    assert step_statuses(conn, run_id) == {"s1": "failed", "s2": "queued"}
    [s2] = claim(conn, "echo")
    assert s2["context"]["steps"]["s1"] == {"status": "failed", "output": None, "error": "nope"}
    assert complete(conn, s2)
    assert run_status(conn, run_id) == "completed"
    assert dlq(conn) == []


def test_on_failure_continue_still_retries_first(conn):
    definition = chain(n=2)
    definition["steps"][0].update(on_failure="continue", max_retries=1)
    define(conn, definition)
    run_id = enqueue(conn, "chain")
    [s1] = claim(conn, "echo")
    assert fail(conn, s1)
    assert step_row(conn, run_id, "s1")["status"] == "retrying"
    make_visible(conn, "echo")
    [s1] = claim(conn, "echo")
    assert fail(conn, s1)
    assert step_statuses(conn, run_id) == {"s1": "failed", "s2": "queued"}


def test_on_failure_retry_aborts_after_the_retries(conn):
    run_id = one_step(conn, on_failure="retry", max_retries=1)
    [task] = claim(conn, "echo")
    task = fail_and_reclaim(conn, task)
    assert fail(conn, task)
    assert step_row(conn, run_id, "a")["status"] == "dead"
    assert run_status(conn, run_id) == "failed"


# --- skip, extend, output size ------------------------------------------------------------------


def test_skip_finishes_the_step_and_moves_the_run_on(conn):
    define(conn, chain(n=2))
    run_id = enqueue(conn, "chain")
    [s1] = claim(conn, "echo")
    assert skip(conn, s1, "when was false")
    assert step_statuses(conn, run_id) == {"s1": "skipped", "s2": "queued"}
    [skipped] = [e for e in events(conn, run_id) if e["kind"] == "skipped"]
    assert skipped["detail"] == {"reason": "when was false", "queued": {"s2": 0}}
    assert [m["message"]["step"] for m in archived(conn, "echo")] == ["s1"]


def test_extend_moves_the_message_vt_and_the_lease(conn):
    run_id = one_step(conn)
    [task] = claim(conn, "echo")
    assert extend(conn, task, 600)
    assert 598 <= wait(conn) <= 600.5
    lease = conn.execute(
        "select extract(epoch from lease_until - now())::float as s from wf.steps where run_id = %s",
        (run_id,)).fetchone()["s"]
    assert 598 <= lease <= 600.5


@pytest.mark.parametrize("seconds", [0, -5, 43201, None])
def test_extend_with_bad_seconds_is_rejected_naming_the_step(shared_conn, seconds):
    run_id = str(uuid.uuid4())  # checked before the run is looked up
    message = f"step a of run {run_id}: seconds must be between 1 and 43200"
    with pytest.raises(errors.InvalidParameterValue, match=message):
        shared_conn.execute("select wf.extend(%s, 'a', 1, %s::int)", (run_id, seconds))


def test_oversized_output_fails_the_step_without_retry(conn):
    conn.execute("update wf.settings set value = '100' where key = 'max_output_bytes'")
    run_id = one_step(conn, max_retries=3)
    [task] = claim(conn, "echo")
    assert complete(conn, task, {"blob": "x" * 200})
    step = step_row(conn, run_id, "a")
    assert step["status"] == "dead"
    assert step["output"] is None
    assert re.fullmatch(r"output is \d{3} bytes, more than the 100 stored", step["error"])
    assert run_status(conn, run_id) == "failed"


def test_output_within_the_limit_is_stored(conn):
    run_id = one_step(conn)
    [task] = claim(conn, "echo")
    assert complete(conn, task, {"id": 7, "tags": ["a", "b"]})
    assert step_row(conn, run_id, "a")["output"] == {"id": 7, "tags": ["a", "b"]}


def test_complete_batch_completes_each_answer_and_archives_their_messages(conn):
    define(conn, chain(n=2))
    runs = [enqueue(conn, "chain", {"n": i}) for i in range(3)]
    tasks = claim(conn, "echo")
    assert complete_batch(conn, tasks, [{"i": i} for i in range(3)]) == 3
    for run_id in runs:
        assert step_statuses(conn, run_id) == {"s1": "succeeded", "s2": "queued"}
    assert {m["message"]["step"] for m in messages(conn, "echo")} == {"s2"}  # the s1 messages are archived
    assert len(archived(conn, "echo")) == 3


def test_complete_batch_fences_a_stale_answer_like_complete(conn):
    define(conn, chain(n=1))
    run_id = enqueue(conn, "chain")
    [first] = claim(conn, "echo")
    make_visible(conn, "echo")
    [second] = claim(conn, "echo")  # the first attempt was lost
    assert complete_batch(conn, [first, second], [{"from": 1}, {"from": 2}]) == 1
    assert step_row(conn, run_id, "s1")["output"] == {"from": 2}
    assert ("stale_answer", 1) in event_kinds(conn, run_id, "s1")
