"""Faults (README, Concepts and Command line: `wf worker`): SIGKILL the worker mid-batch, restart PostgreSQL
under it, SIGTERM it with calls in flight. Afterwards every run is final, no step succeeded twice, nothing is
lost.

Leases are simulated: after a kill the test back-dates the queue's messages (`make_visible`) instead of
waiting out the visibility timeout (a step's timeout + 15 s)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row
from wf.install import install_sync
from wfproc import wait_final, wait_until
from wfsql import define, enqueue, make_visible

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
WORKER_ARGS = ("--concurrency", "16", "--poll-interval", "0.2")


def slow_chain(name: str = "batch", steps: int = 3, ms: int = 200) -> dict:
    return {"name": name, "max_retries": 10, "backoff": {"delays": [0]}, "timeout_seconds": 10,
            "steps": [{"name": f"s{i}", "function": "misbehave", "action": "slow", "payload_template": {"ms": ms}}
                      for i in range(1, steps + 1)]}


def count_steps(conn: psycopg.Connection, status: str) -> int:
    return conn.execute("select count(*) as n from wf.steps where status = %s", (status,)).fetchone()["n"]


def assert_each_step_succeeded_once(conn: psycopg.Connection, run_ids: list[str], steps: int) -> None:
    rows = conn.execute(
        """select run_id, step, count(*) filter (where kind = 'succeeded') as succeeded
           from wf.events where run_id = any(%s::uuid[]) and step is not null group by 1, 2""",
        (run_ids,)).fetchall()
    assert len(rows) == len(run_ids) * steps
    assert {r["succeeded"] for r in rows} == {1}, [r for r in rows if r["succeeded"] != 1]


def settled(conn: psycopg.Connection) -> bool:
    """No other session of this database is running a statement: a report the killed worker had already
    sent still commits, so count what it left behind only after that."""
    return not conn.execute(
        """select 1 from pg_stat_activity
           where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle'""").fetchall()


def event_count(conn: psycopg.Connection, kind: str) -> int:
    return conn.execute("select count(*) as n from wf.events where kind = %s", (kind,)).fetchone()["n"]


# ---- SIGKILL ----------------------------------------------------------------------------------------------


def test_sigkill_mid_batch_then_a_new_worker_loses_nothing(db, conn, start_worker):
    define(conn, slow_chain())
    runs = [enqueue(conn, "batch") for _ in range(30)]
    worker = start_worker(db, *WORKER_ARGS)
    left_running = 0
    for _ in range(3):
        target = count_steps(conn, "succeeded") + 12
        wait_until(lambda t=target: count_steps(conn, "succeeded") >= t and count_steps(conn, "running") > 0,
                   20, "progress with calls in flight", worker.tail)
        worker.kill()
        wait_until(lambda: settled(conn), 10, "the dead worker's last statements to end")
        left_running += count_steps(conn, "running")  # attempts the dead worker will never answer
        make_visible(conn, "misbehave")  # their leases run out
        worker = start_worker(db, *WORKER_ARGS)

    statuses = wait_final(conn, runs, 30, worker)
    assert set(statuses.values()) == {"completed"}
    assert_each_step_succeeded_once(conn, runs, 3)
    assert left_running > 0
    # every attempt left behind is in the history, and the timeline shows it as lost
    assert event_count(conn, "attempt_lost") == left_running
    lost = conn.execute("select count(*) as n from wf.step_timeline where status = 'lost'").fetchone()["n"]
    assert lost == left_running
    assert not conn.execute("select 1 from wf.steps where status <> 'succeeded'").fetchall()


def test_steps_claimed_ahead_and_not_started_when_the_worker_dies_come_back_as_lost_attempts(
        db, conn, start_worker):
    """Claim-ahead starts the attempt at the claim (the step shows as running): a worker killed before
    calling it leaves a lost attempt, exactly like a call in flight; the next claim records it."""
    define(conn, slow_chain("ahead", steps=1, ms=5000))
    runs = [enqueue(conn, "ahead") for _ in range(3)]
    worker = start_worker(db, "--concurrency", "1", "--claim-ahead", "2", "--poll-interval", "0.2")
    # one call in flight (concurrency 1) and two more claimed: three attempts started
    wait_until(lambda: count_steps(conn, "running") == 3, 15, "one call and two steps claimed ahead", worker.tail)
    worker.kill()
    wait_until(lambda: settled(conn), 10, "the dead worker's last statements to end")
    make_visible(conn, "misbehave")
    conn.execute("update wf.definition_steps set payload_template = '{\"ms\": 10}' where workflow = 'ahead'")
    statuses = wait_final(conn, runs, 30, start_worker(db, *WORKER_ARGS))
    assert set(statuses.values()) == {"completed"}
    assert_each_step_succeeded_once(conn, runs, 1)
    assert event_count(conn, "attempt_lost") == 3
    assert {r["attempt"] for r in conn.execute("select attempt from wf.steps").fetchall()} == {2}


def test_a_lease_that_runs_out_mid_call_makes_the_late_answer_stale(db, conn, start_worker):
    """Worker A's call outlives its lease; worker B claims attempt 2 and answers. A's answer comes back
    late: it is recorded as `stale_answer` and changes nothing, and the step succeeds once."""
    define(conn, slow_chain("lease", steps=1, ms=2000))
    run_id = enqueue(conn, "lease")
    first = start_worker(db, *WORKER_ARGS)
    wait_until(lambda: count_steps(conn, "running") == 1, 15, "the first call", first.tail)
    make_visible(conn, "misbehave")  # the lease runs out while the call is still going
    second = start_worker(db, *WORKER_ARGS)
    assert wait_final(conn, run_id, 15, second) == {run_id: "completed"}
    wait_until(lambda: event_count(conn, "stale_answer") == 1, 10, "the first worker's late answer", first.tail)

    history = [(e["kind"], e["attempt"]) for e in conn.execute(
        "select kind, attempt from wf.events where step is not null order by id").fetchall()]
    assert ("attempt_lost", 1) in history
    assert ("stale_answer", 1) in history
    assert [a for k, a in history if k == "succeeded"] == [2]
    step = conn.execute("select status, attempt from wf.steps").fetchone()
    assert (step["status"], step["attempt"]) == ("succeeded", 2)


# ---- PostgreSQL restart --------------------------------------------------------------------------------


@dataclass
class OwnServer:
    """A PostgreSQL of this test's own (scripts/pg-start), so it can be restarted under the worker."""

    datadir: str
    dsn: str

    def restart(self) -> None:
        as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_owner, str(PG_BIN / "pg_ctl"), "-D", self.datadir, "-l", f"{self.datadir}/server.log",
                        "-m", "fast", "-w", "-t", "60", "restart"], check=True, stdout=subprocess.DEVNULL)


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    datadir = tempfile.mkdtemp(prefix="wf-faults-pg.")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        dsn = subprocess.run([str(REPO / "scripts/pg-start"), datadir, str(port)],
                             env={**os.environ, "WF_PG_FAST": "1"}, check=True, capture_output=True,
                             text=True).stdout.strip()
        install_sync(dsn, cron=False)
        yield OwnServer(datadir, dsn)
    finally:
        subprocess.run([str(REPO / "scripts/pg-stop"), datadir], check=False)


def test_postgres_restart_mid_batch_the_worker_reconnects_and_finishes(own_server, start_worker):
    dsn = own_server.dsn
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        define(conn, slow_chain())
        runs = [enqueue(conn, "batch") for _ in range(20)]
        worker = start_worker(dsn, *WORKER_ARGS)
        wait_until(lambda: count_steps(conn, "succeeded") >= 10 and count_steps(conn, "running") > 0,
                   20, "progress with calls in flight", worker.tail)
    own_server.restart()  # -m fast: every connection of the worker is cut

    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        statuses = wait_final(conn, runs, 45, worker)
        assert set(statuses.values()) == {"completed"}
        assert_each_step_succeeded_once(conn, runs, 3)
    assert worker.proc.poll() is None  # it rode the restart out
    events = {r.get("event") for r in worker.logs()}
    assert events & {"claim_failed", "side_task_failed"}, worker.tail()  # it noticed, and carried on


# ---- SIGTERM ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def calls_in_flight(metrics_port: int) -> float:
    """The worker's wf_in_flight gauge, summed over its stages (0 while it cannot be read)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("wf_in_flight{"))


def test_sigterm_lets_calls_in_flight_finish_and_exits_0(db, conn, start_worker):
    define(conn, {"name": "two", "backoff": {"delays": [0]}, "steps": [
        {"name": "slow", "function": "misbehave", "action": "slow", "payload_template": {"ms": 1000}},
        {"name": "next", "function": "echo", "action": "go"},
    ]})
    runs = [enqueue(conn, "two") for _ in range(5)]
    metrics_port = free_port()
    worker = start_worker(db, *WORKER_ARGS, "--grace", "30", "--metrics-port", str(metrics_port))
    # claimed (the database) and called (the worker's own gauge: a loaded machine may answer the
    # claim before the worker has started the calls)
    wait_until(lambda: count_steps(conn, "running") == 5 and calls_in_flight(metrics_port) == 5, 15,
               "5 calls in flight", worker.tail)

    worker.send(signal.SIGTERM)
    assert worker.wait(20) == 0
    rows = conn.execute("select name, status, attempt from wf.steps").fetchall()
    assert sorted((r["name"], r["status"], r["attempt"]) for r in rows) == \
        [("next", "queued", 0)] * 5 + [("slow", "succeeded", 1)] * 5  # finished, and nothing new claimed
    assert event_count(conn, "attempt_lost") == event_count(conn, "stale_answer") == 0
    logs = worker.logs()
    assert [r["in_flight"] for r in logs if r.get("event") == "worker_stopping"] == [5]
    assert logs[-1]["event"] == "worker_stopped"

    # the next worker picks up where this one stopped
    assert set(wait_final(conn, runs, 15, start_worker(db, *WORKER_ARGS)).values()) == {"completed"}


def test_sigterm_after_the_grace_period_exits_0_and_the_next_worker_redoes_the_calls(db, conn, start_worker):
    define(conn, {"name": "long", "backoff": {"delays": [0]}, "steps": [
        {"name": "slow", "function": "misbehave", "action": "slow", "payload_template": {"ms": 2000}}]})
    runs = [enqueue(conn, "long") for _ in range(3)]
    worker = start_worker(db, *WORKER_ARGS, "--grace", "0.3")
    wait_until(lambda: count_steps(conn, "running") == 3, 15, "3 calls in flight", worker.tail)

    worker.send(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert any(r.get("event") == "grace_expired" for r in worker.logs())
    assert count_steps(conn, "running") == 3  # unanswered: their messages come back after the lease

    make_visible(conn, "misbehave")
    assert set(wait_final(conn, runs, 15, start_worker(db, *WORKER_ARGS)).values()) == {"completed"}
    assert event_count(conn, "attempt_lost") == 3
    assert_each_step_succeeded_once(conn, runs, 1)
