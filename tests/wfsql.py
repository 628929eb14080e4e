"""Small wrappers over the wf SQL API for tests (psycopg, dict rows)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

REPO = Path(__file__).resolve().parents[1]

SEED_INPUT = {
    "proposal_id": "p-1",
    "guest_id": "g-1",
    "host_id": "h-1",
    "listing_id": "l-1",
    "status": "pending",
    "host_email": "host@example.com",
    "guest_name": "Grace",
    "listing_name": "Loft by the river",
}


def seed_definition() -> dict[str, Any]:
    return json.loads((REPO / "templates/proposal-created.json").read_text())


def define(conn: psycopg.Connection, definition: dict[str, Any]) -> int:
    return conn.execute("select wf.define(%s) as v", (Jsonb(definition),)).fetchone()["v"]


def enqueue(
    conn: psycopg.Connection, workflow: str, input: dict[str, Any] | None = None, **kw: Any
) -> str:
    row = conn.execute(
        "select wf.enqueue(%s, %s, %s, %s, %s) as id",
        (workflow, Jsonb(input or {}), kw.get("key"), kw.get("run_at"), kw.get("correlation_id")),
    ).fetchone()
    return str(row["id"])


def claim(conn: psycopg.Connection, stage: str, qty: int = 10) -> list[dict[str, Any]]:
    return conn.execute("select * from wf.claim(%s, %s)", (stage, qty)).fetchall()


def complete(conn: psycopg.Connection, task: dict[str, Any], output: Any = None) -> bool:
    out = Jsonb(output if output is not None else {})
    return conn.execute(
        "select wf.complete(%s, %s, %s, %s) as ok",
        (task["run_id"], task["step"], task["attempt"], out),
    ).fetchone()["ok"]


def complete_batch(conn: psycopg.Connection, tasks: list[dict[str, Any]], outputs: list[Any]) -> int:
    """wf.complete_batch over tasks with one output each; how many answers changed a step."""
    return conn.execute(
        "select wf.complete_batch(%s::uuid[], %s::text[], %s::int[], %s::jsonb[]) as n",
        ([t["run_id"] for t in tasks], [t["step"] for t in tasks], [t["attempt"] for t in tasks],
         [Jsonb(o) for o in outputs])).fetchone()["n"]


def fail(conn: psycopg.Connection, task: dict[str, Any], error: str = "boom", **kw: Any) -> bool:
    return conn.execute(
        "select wf.fail(%s, %s, %s, %s, %s, %s, %s) as ok",
        (task["run_id"], task["step"], task["attempt"], error, kw.get("retryable", True),
         kw.get("http_status"), kw.get("retry_after")),
    ).fetchone()["ok"]


def skip(conn: psycopg.Connection, task: dict[str, Any], reason: str | None = None) -> bool:
    return conn.execute(
        "select wf.skip(%s, %s, %s, %s) as ok",
        (task["run_id"], task["step"], task["attempt"], reason),
    ).fetchone()["ok"]


def extend(conn: psycopg.Connection, task: dict[str, Any], seconds: int) -> bool:
    return conn.execute(
        "select wf.extend(%s, %s, %s, %s) as ok",
        (task["run_id"], task["step"], task["attempt"], seconds),
    ).fetchone()["ok"]


def run_status(conn: psycopg.Connection, run_id: str) -> str:
    return conn.execute("select status from wf.runs where id = %s", (run_id,)).fetchone()["status"]


def step_statuses(conn: psycopg.Connection, run_id: str) -> dict[str, str]:
    rows = conn.execute("select name, status from wf.steps where run_id = %s", (run_id,)).fetchall()
    return {r["name"]: r["status"] for r in rows}


def step_row(conn: psycopg.Connection, run_id: str, step: str) -> dict[str, Any]:
    return conn.execute(
        "select * from wf.steps where run_id = %s and name = %s", (run_id, step)
    ).fetchone()


def events(conn: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    return conn.execute(
        "select * from wf.events where run_id = %s order by id", (run_id,)
    ).fetchall()


def event_kinds(conn: psycopg.Connection, run_id: str, step: str | None = None) -> list[tuple]:
    """(kind, attempt) of a run's events in order, optionally of one step."""
    return [(e["kind"], e["attempt"]) for e in events(conn, run_id)
            if step is None or e["step"] == step]


def queue_of(conn: psycopg.Connection, stage: str) -> str:
    return conn.execute("select queue from wf.stages where name = %s", (stage,)).fetchone()["queue"]


def make_visible(conn: psycopg.Connection, stage: str, msg_id: int | None = None) -> None:
    """Simulate time: every message of the stage's queue (or just msg_id) becomes visible now
    (back-dates vt)."""
    conn.execute(
        f"""update pgmq."q_{queue_of(conn, stage)}" set vt = now() - interval '1 second'
            where msg_id = %(id)s or %(id)s::bigint is null""",
        {"id": msg_id},
    )


def age_messages(conn: psycopg.Connection, run_id: str, age: str) -> None:
    """Simulate time: the run's messages in every stage queue were enqueued and due `age` (an
    interval, '16 minutes') earlier, as they would be for a step queued or claimed that long ago."""
    bands = conn.execute("select b.queue from wf.stages st, "
                         "unnest(array_remove(array[st.queue, st.queue_hi, st.queue_lo], null)) as b(queue)")
    for row in bands.fetchall():
        conn.execute(f"""update pgmq."q_{row['queue']}" set enqueued_at = enqueued_at - %(age)s::interval,
                             vt = vt - %(age)s::interval
                         where message ->> 'run_id' = %(run)s""", {"age": age, "run": run_id})


def messages(conn: psycopg.Connection, stage: str) -> list[dict[str, Any]]:
    """The messages still in a stage's queue (visible or not), with seconds until visible."""
    return conn.execute(
        f"""select msg_id, read_ct, message, extract(epoch from vt - clock_timestamp())::float as wait
            from pgmq."q_{queue_of(conn, stage)}" order by msg_id"""
    ).fetchall()


def archived(conn: psycopg.Connection, stage: str) -> list[dict[str, Any]]:
    return conn.execute(
        f'select msg_id, message from pgmq."a_{queue_of(conn, stage)}" order by msg_id'
    ).fetchall()


def dlq(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """The dead letters still in wf_dlq (reading with vt 0 leaves them visible)."""
    return conn.execute("select msg_id, message from pgmq.read('wf_dlq', 0, 100)").fetchall()


def counts(conn: psycopg.Connection, *tables: str) -> dict[str, int]:
    return {t: conn.execute(f"select count(*) as n from {t}").fetchone()["n"] for t in tables}


def wait_until_blocked_or_done(conn: psycopg.Connection, thread: threading.Thread) -> None:
    """Poll (no fixed sleep) until another transaction of this database waits for a lock, or
    the thread has finished."""
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        row = conn.execute(
            """select count(*) as n from pg_stat_activity
               where datname = current_database() and wait_event_type = 'Lock'"""
        ).fetchone()
        if row["n"]:
            return
        time.sleep(0.005)


def chain(
    name: str = "chain", n: int = 3, function: str = "echo", **step_extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {"name": f"s{i}", "function": function, "action": "go",
             "payload_template": {"i": i}, **step_extra}
            for i in range(1, n + 1)
        ],
    }


def diamond(name: str = "diamond", function: str = "echo", **top: Any) -> dict[str, Any]:
    """a → (b, c) → d: fan-out after a, fan-in at d."""
    step = {"function": function, "action": "go"}
    return {
        "name": name,
        **top,
        "steps": [
            {"name": "a", **step},
            {"name": "b", "depends_on": ["a"], **step},
            {"name": "c", "depends_on": ["a"], **step},
            {"name": "d", "depends_on": ["b", "c"], **step},
        ],
    }
