"""e2e fixtures: the session gateway and `start_worker` live in tests/conftest.py (the fault and
CLI tests use them too); here is what only the e2e tests need."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from wfproc import WorkerProcess, wait_final
from wfsql import define, enqueue


@pytest.fixture
def run_to_end(db: str, conn: psycopg.Connection,
               start_worker: Callable[..., WorkerProcess]) -> Callable[..., dict[str, Any]]:
    """Define a workflow, enqueue one run, start a worker (--poll-interval 0.2), wait until the run is
    final; returns the run's wf.runs_overview row."""

    def run(definition: dict[str, Any], input: dict[str, Any] | None = None, timeout: float = 20.0) -> dict[str, Any]:
        define(conn, definition)
        run_id = enqueue(conn, definition["name"], input or {})
        wait_final(conn, run_id, timeout, start_worker(db))
        return conn.execute("select * from wf.runs_overview where run_id = %s", (run_id,)).fetchone()

    return run
