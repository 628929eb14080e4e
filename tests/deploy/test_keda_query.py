"""The query KEDA scales the workers on (deploy/keda.yaml), run as KEDA runs it: by a login in
role wf_reader, against a database with wf installed and work queued, claimed and waiting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg.rows import dict_row
from wfsql import chain, claim, define, enqueue, fail

REPO = Path(__file__).resolve().parents[2]


def keda_query() -> str:
    for doc in yaml.safe_load_all((REPO / "deploy/keda.yaml").read_text()):
        if doc and doc["kind"] == "ScaledObject":
            [trigger] = [t for t in doc["spec"]["triggers"] if t["type"] == "postgresql"]
            return trigger["metadata"]["query"]
    raise AssertionError("deploy/keda.yaml has no ScaledObject")


@pytest.fixture
def work(login_as: Callable[[str], str]) -> Iterator[Callable[[], int]]:
    """What KEDA would read now: the query's one number, as a wf_reader login."""
    with psycopg.connect(login_as("wf_reader"), autocommit=True, row_factory=dict_row) as reader:
        def read() -> int:
            rows = reader.execute(keda_query()).fetchall()
            assert len(rows) == 1 and len(rows[0]) == 1, rows
            [value] = rows[0].values()
            assert isinstance(value, int)
            return value

        yield read


def test_keda_query_is_zero_when_nothing_is_queued(conn, work):
    define(conn, chain("signup", 2, function="email"))
    assert work() == 0


def test_keda_query_counts_steps_due_and_calls_in_flight(conn, work):
    define(conn, chain("signup", 2, function="email"))
    define(conn, chain("sync", 1, function="crm"))
    for i in range(5):
        enqueue(conn, "signup", {"i": i})
    for i in range(3):
        enqueue(conn, "sync", {"i": i})
    assert work() == 8
    # claimed steps are calls in flight: a worker busy with them still needs its place
    assert len(claim(conn, "email", 2)) == 2
    assert len(claim(conn, "crm", 3)) == 3
    assert work() == 8


def test_keda_query_leaves_out_steps_waiting_for_a_later_time(conn, work):
    define(conn, chain("signup", 1, function="email", max_retries=3,
                       backoff={"base_seconds": 600, "factor": 1}))
    enqueue(conn, "signup", {"i": 1}, run_at=datetime.now(UTC) + timedelta(hours=1))  # a delayed start
    enqueue(conn, "signup", {"i": 2})
    enqueue(conn, "signup", {"i": 3})
    assert work() == 2
    retried, deferred = claim(conn, "email", 2)
    assert work() == 2  # in flight
    assert fail(conn, retried, "503 from upstream")  # retried in 10 minutes: nothing to do until then
    assert work() == 1
    # a step whose not_before is still ahead: the worker gives the attempt back until then
    assert conn.execute("select wf.defer(%s, %s, %s, now() + interval '7 days') as ok",
                        (deferred["run_id"], deferred["step"], deferred["attempt"])).fetchone()["ok"]
    assert work() == 0
    # all three wait in the queue all the same: its depth alone would keep a worker for them
    depth = conn.execute("select sum(depth)::int as n from wf.stage_health").fetchone()["n"]
    assert depth == 3


def test_keda_query_caps_a_stage_at_its_max_concurrency(conn, work):
    define(conn, chain("sync", 1, function="crm"))
    define(conn, chain("signup", 1, function="email"))
    for i in range(10):
        enqueue(conn, "sync", {"i": i})
    enqueue(conn, "signup", {"i": 1})
    conn.execute("select wf.configure_stage('crm', max_concurrency => 4)")
    # more workers cannot run more than 4 crm calls at once: the backlog behind the limit asks for none
    assert work() == 4 + 1


def test_keda_query_leaves_out_paused_stages(conn, work):
    define(conn, chain("sync", 1, function="crm"))
    define(conn, chain("signup", 1, function="email"))
    for i in range(3):
        enqueue(conn, "sync", {"i": i})
    enqueue(conn, "signup", {"i": 1})
    conn.execute("select wf.pause_stage('crm')")
    assert work() == 1
