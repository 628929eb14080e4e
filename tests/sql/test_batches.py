"""Batches: wf.claim and wf.complete_batch handle a whole batch set-based, with the same
outcome, step by step and event by event, as one message or one answer at a time."""

from __future__ import annotations

from psycopg.types.json import Jsonb
from wfsql import (
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
    make_visible,
    messages,
    queue_of,
    run_status,
    step_row,
    step_statuses,
)


def history(conn, run_id: str) -> list[tuple]:
    """A run's events without what differs between two equal runs (ids, times, durations)."""
    return [(e["kind"], e["step"], e["attempt"],
             {k: v for k, v in (e["detail"] or {}).items() if k != "duration_ms"})
            for e in events(conn, run_id)]


def test_one_claim_starts_fresh_steps_and_a_lost_attempt_and_dead_letters_a_malformed_message(conn):
    define(conn, chain(n=1))
    lost, fresh = enqueue(conn, "chain"), enqueue(conn, "chain")
    [first] = claim(conn, "echo", 1)
    assert str(first["run_id"]) == lost
    make_visible(conn, "echo")  # the consumer of the first attempt died
    conn.execute("select pgmq.send(%s, %s)", (queue_of(conn, "echo"), Jsonb({"not": "wf"})))
    tasks = claim(conn, "echo")
    assert sorted((str(t["run_id"]), t["attempt"]) for t in tasks) == sorted([(lost, 2), (fresh, 1)])
    assert event_kinds(conn, lost, "s1") == [("started", 1), ("attempt_lost", 1), ("started", 2)]
    assert event_kinds(conn, fresh, "s1") == [("started", 1)]
    assert [d["message"]["error"] for d in dlq(conn)] == ["malformed message"]


def test_claimed_context_shows_each_step_already_running(conn):
    define(conn, chain(n=2))
    run_ids = [enqueue(conn, "chain") for _ in range(3)]
    tasks = claim(conn, "echo")
    assert sorted(str(t["run_id"]) for t in tasks) == sorted(run_ids)
    for task in tasks:
        assert task["context"]["steps"]["s1"]["status"] == "running"
        assert task["context"]["steps"]["s2"]["status"] == "waiting"
        assert task["context"]["run"]["id"] == str(task["run_id"])


def test_claim_starts_every_run_of_the_batch(conn):
    define(conn, chain(n=1))
    run_ids = [enqueue(conn, "chain") for _ in range(4)]
    claim(conn, "echo")
    assert {run_status(conn, r) for r in run_ids} == {"running"}
    for run_id in run_ids:
        assert step_row(conn, run_id, "s1")["started_at"] is not None


def test_each_step_queued_by_a_batch_points_at_its_own_message(conn):
    define(conn, chain(n=2))
    run_ids = [enqueue(conn, "chain") for _ in range(5)]
    tasks = claim(conn, "echo")
    assert complete_batch(conn, tasks, [{} for _ in tasks]) == 5
    by_id = {m["msg_id"]: m["message"] for m in messages(conn, "echo")}
    for run_id in run_ids:
        row = step_row(conn, run_id, "s2")
        assert row["status"] == "queued"
        assert by_id[row["msg_id"]] == {"run_id": run_id, "step": "s2"}


def test_fan_in_answered_in_one_batch_queues_the_join_once(conn):
    define(conn, diamond())
    run_id = enqueue(conn, "diamond")
    [a] = claim(conn, "echo")
    assert complete(conn, a)
    b_and_c = sorted(claim(conn, "echo"), key=lambda t: t["step"])
    assert [t["step"] for t in b_and_c] == ["b", "c"]
    assert complete_batch(conn, b_and_c, [{}, {}]) == 2
    assert [m["message"]["step"] for m in messages(conn, "echo")] == ["d"]
    done = [e for e in events(conn, run_id) if e["kind"] == "succeeded" and e["step"] in ("b", "c")]
    # the answer that made d ready, the last one, tells that d was queued
    assert [(e["step"], (e["detail"] or {}).get("queued")) for e in done] == [("b", None), ("c", {"d": 0})]


def test_the_same_answer_twice_in_one_batch_counts_once_and_records_the_repeat(conn):
    define(conn, chain(n=1))
    run_id = enqueue(conn, "chain")
    [task] = claim(conn, "echo")
    assert complete_batch(conn, [task, task], [{"n": 1}, {"n": 2}]) == 1
    assert step_row(conn, run_id, "s1")["output"] == {"n": 1}
    assert event_kinds(conn, run_id, "s1") == [("started", 1), ("stale_answer", 1), ("succeeded", 1)]
    assert run_status(conn, run_id) == "completed"


def test_an_oversized_output_in_a_batch_fails_only_its_own_step(conn):
    define(conn, chain(n=1, on_failure="continue"))
    conn.execute("update wf.settings set value = '100' where key = 'max_output_bytes'")
    small, big = enqueue(conn, "chain"), enqueue(conn, "chain")
    tasks = {str(t["run_id"]): t for t in claim(conn, "echo")}
    assert complete_batch(conn, [tasks[small], tasks[big]], [{"ok": True}, {"blob": "x" * 200}]) == 2
    assert step_statuses(conn, small) == {"s1": "succeeded"}
    assert step_statuses(conn, big) == {"s1": "failed"}
    assert "more than the 100 stored" in step_row(conn, big, "s1")["error"]
    assert run_status(conn, small) == run_status(conn, big) == "completed"


def test_a_batch_of_answers_leaves_the_same_history_as_answers_one_by_one(conn):
    define(conn, diamond())
    one_by_one = [enqueue(conn, "diamond", {"i": i}) for i in range(3)]
    batched = [enqueue(conn, "diamond", {"i": i}) for i in range(3)]
    while tasks := claim(conn, "echo", 100):
        singles = [t for t in tasks if str(t["run_id"]) in one_by_one]
        for task in singles:
            assert complete(conn, task, {"step": task["step"]})
        rest = [t for t in tasks if str(t["run_id"]) in batched]
        assert complete_batch(conn, rest, [{"step": t["step"]} for t in rest]) == len(rest)
    for single, batch in zip(one_by_one, batched, strict=True):
        assert run_status(conn, batch) == run_status(conn, single) == "completed"
        assert history(conn, batch) == history(conn, single)
