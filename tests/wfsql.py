"""Small wrappers over the wf SQL API for tests (psycopg, dict rows)."""

from __future__ import annotations

import json
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


def enqueue(conn: psycopg.Connection, workflow: str, input: dict[str, Any] | None = None, **kw: Any) -> str:
    row = conn.execute(
        "select wf.enqueue(%s, %s, %s, %s, %s) as id",
        (workflow, Jsonb(input or {}), kw.get("key"), kw.get("run_at"), kw.get("correlation_id")),
    ).fetchone()
    return str(row["id"])


def claim(conn: psycopg.Connection, stage: str, qty: int = 10) -> list[dict[str, Any]]:
    return conn.execute("select * from wf.claim(%s, %s)", (stage, qty)).fetchall()


def complete(conn: psycopg.Connection, task: dict[str, Any], output: Any = None) -> bool:
    return conn.execute(
        "select wf.complete(%s, %s, %s, %s) as ok",
        (task["run_id"], task["step"], task["attempt"], Jsonb(output if output is not None else {})),
    ).fetchone()["ok"]


def fail(conn: psycopg.Connection, task: dict[str, Any], error: str = "boom", **kw: Any) -> bool:
    return conn.execute(
        "select wf.fail(%s, %s, %s, %s, %s, %s, %s) as ok",
        (task["run_id"], task["step"], task["attempt"], error, kw.get("retryable", True),
         kw.get("http_status"), kw.get("retry_after")),
    ).fetchone()["ok"]


def run_status(conn: psycopg.Connection, run_id: str) -> str:
    return conn.execute("select status from wf.runs where id = %s", (run_id,)).fetchone()["status"]


def step_statuses(conn: psycopg.Connection, run_id: str) -> dict[str, str]:
    rows = conn.execute("select name, status from wf.steps where run_id = %s", (run_id,)).fetchall()
    return {r["name"]: r["status"] for r in rows}


def events(conn: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    return conn.execute("select * from wf.events where run_id = %s order by id", (run_id,)).fetchall()


def make_visible(conn: psycopg.Connection, stage: str) -> None:
    """Simulate time: every message of the stage's queue becomes visible now (back-dates vt)."""
    queue = conn.execute("select queue from wf.stages where name = %s", (stage,)).fetchone()["queue"]
    conn.execute(f'update pgmq."q_{queue}" set vt = now() - interval \'1 second\'')


def chain(name: str = "chain", n: int = 3, function: str = "echo", **step_extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {"name": f"s{i}", "function": function, "action": "go",
             "payload_template": {"i": i}, **step_extra}
            for i in range(1, n + 1)
        ],
    }
