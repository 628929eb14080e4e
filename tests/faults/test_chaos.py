"""Chaos (README, Development): two workers SIGKILLed at random moments, PostgreSQL stopped with
`-m immediate` and started again mid-run, and a function that fails one call in eight. Afterwards every
run is final, no step succeeded twice, the fan-in step never ran before its dependencies succeeded, every
step was called, and the calls per step stay at most 1.5. Then eight worker processes share one database:
no attempt is claimed twice, every stage is served.

The function is supabase/functions/chaos: a call fails when the FNV-1a hash of `<run>:<step>#<attempt>`
is 0 modulo 8, so the test knows which calls fail; it records every call with a sequence number when it
arrives and one when it answers (the test's view of "called", and of "before").

The moments of the kills and of the restart are drawn from a seeded RNG: the seed is printed and
WF_CHAOS_SEED repeats a schedule. Leases are simulated: a step still running a few seconds after its
attempt started, with no call in flight at the function, belongs to a dead worker (a killed one, or a
claim whose answer the restart cut off); the test makes its message visible at once (back-dates its vt)
instead of waiting out the visibility timeout (a step's timeout + 15 s)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from standardwebhooks import Webhook
from wf.install import install_sync
from wfproc import FINAL_RUN, Gateway, WorkerProcess, wait_final
from wfsql import define, queue_of

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")

FANS = [f"fan_{i}" for i in range(1, 5)]
STEPS = ["start", *FANS, "join", "finish"]
RUNS = 60
MAX_CALLS_PER_STEP = 1.5
# a running step whose attempt started this long ago with no call in flight has no live worker
ORPHAN_AFTER_SECONDS = 4.0
CHAOS_ARGS = ("--concurrency", "4", "--claim-ahead", "2", "--poll-interval", "0.2")


# ---- the function's verdict, computed here -----------------------------------------------------------------


def fnv1a(text: str) -> int:
    """32-bit FNV-1a over the UTF-8 bytes, as supabase/functions/chaos computes it."""
    h = 0x811C9DC5
    for byte in text.encode():
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def call_fails(run_id: str, step: str, attempt: int) -> bool:
    return fnv1a(f"{run_id}:{step}#{attempt}") % 8 == 0


def test_the_chaos_function_fails_exactly_the_calls_the_test_computes(gateway: Gateway):
    run_id = "00000000-0000-4000-8000-000000000000"
    signer = Webhook(gateway.secret)
    body = {"action": "call", "payload": {}}
    verdicts = {}
    for attempt in range(1, 25):
        now = datetime.now(UTC)
        status, answer = gateway.request("chaos", "POST", body, headers={
            "x-wf-run": run_id, "x-wf-step": "s", "x-wf-attempt": str(attempt), "webhook-id": f"{run_id}:s",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(f"{run_id}:s", now, json.dumps(body))})
        verdicts[attempt] = (status, answer["success"])
    expected = {a: (503, False) if call_fails(run_id, "s", a) else (200, True) for a in verdicts}
    assert verdicts == expected
    assert 0 < sum(call_fails(run_id, "s", a) for a in range(1, 25)) < 24


# ---- a PostgreSQL of the test's own, to crash ------------------------------------------------------------


@dataclass
class CrashableServer:
    """scripts/pg-start's server, stopped with `-m immediate` (every backend killed, crash recovery at the
    next start). fsync is off as for every test server, which an immediate stop does not care about (the
    kernel keeps what was written); synchronous_commit is on, as on Supabase: a commit the client saw
    survives the crash."""

    datadir: str
    dsn: str

    def _pg_ctl(self, *args: str) -> None:
        as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_owner, str(PG_BIN / "pg_ctl"), "-D", self.datadir, "-l", f"{self.datadir}/server.log",
                        *args], check=True, stdout=subprocess.DEVNULL)

    def crash(self) -> None:
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def start(self) -> None:
        self._pg_ctl("-w", "-t", "60", "start")


@pytest.fixture
def crash_server() -> Iterator[CrashableServer]:
    datadir = tempfile.mkdtemp(prefix="wf-chaos-pg.")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        dsn = subprocess.run([str(REPO / "scripts/pg-start"), datadir, str(port)],
                             env={**os.environ, "WF_PG_FAST": "1"}, check=True, capture_output=True,
                             text=True).stdout.strip()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("alter system set synchronous_commit = on")
            conn.execute("select pg_reload_conf()")
        install_sync(dsn, cron=False)
        yield CrashableServer(datadir, dsn)
    finally:
        subprocess.run([str(REPO / "scripts/pg-stop"), datadir], check=False)


class Probe:
    """The test's connection to a server that goes away: None while it is down, reopened when it is back."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: psycopg.Connection | None = None

    def rows(self, sql: str, params: Any = None) -> list[dict[str, Any]] | None:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row, connect_timeout=2)
            return self.conn.execute(sql, params).fetchall()
        except psycopg.OperationalError:
            self.close()
            return None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


# ---- the workflow and what the function saw ---------------------------------------------------------------


def chaos_definition() -> dict[str, Any]:
    """start → fan_1 … fan_4 → join (fan-in: it depends on all four) → finish; every step a call to chaos."""
    call = {"function": "chaos", "action": "call"}
    ms = {"ms": "{{ ms }}"}
    return {
        "name": "chaos", "max_retries": 10, "backoff": {"delays": [0]}, "timeout_seconds": 10,
        "steps": [
            {"name": "start", **call, "payload_template": ms},
            # the dependencies end at different times (fan_i waits ms * i // 2): a join that waited for
            # fewer than all four would start before the slowest
            *[{"name": f, "depends_on": ["start"], **call, "payload_template": {"ms": f"{{{{ ms * {i} // 2 }}}}"}}
              for i, f in enumerate(FANS, 1)],
            {"name": "join", "depends_on": FANS, **call,
             "payload_template": {**ms, "deps": {f: f"{{{{ steps.{f}.status }}}}" for f in FANS}}},
            {"name": "finish", "depends_on": ["join"], **call, "payload_template": ms},
        ]}


def chaos_calls(gateway: Gateway, run_ids: set[str]) -> list[dict[str, Any]]:
    """Every call the chaos function received for these runs, in arrival order."""
    status, body = gateway.request("chaos")
    assert status == 200, body
    return [c for c in body["calls"] if c["run"] in run_ids]


def release_orphans(db: Probe, gateway: Gateway, run_ids: list[str], queue: str) -> int:
    """Make the messages of attempts no live worker holds visible now (the lease ran out); how many."""
    rows = db.rows(
        """select s.run_id::text as run, s.name as step, s.attempt, s.msg_id from wf.steps s
           where s.run_id = any(%s::uuid[]) and s.status = 'running'
             and s.started_at < clock_timestamp() - make_interval(secs => %s)""",
        (run_ids, ORPHAN_AFTER_SECONDS))
    if not rows:
        return 0
    in_flight = {(c["run"], c["step"], c["attempt"]) for c in chaos_calls(gateway, set(run_ids))
                 if c["answered"] is None}
    orphans = [r["msg_id"] for r in rows if (r["run"], r["step"], r["attempt"]) not in in_flight]
    if not orphans:
        return 0
    released = db.rows(
        f"""update pgmq."q_{queue}" set vt = clock_timestamp() - interval '1 second'
            where msg_id = any(%s) and vt > clock_timestamp() returning msg_id""", (orphans,))
    return len(released or [])


@dataclass
class Chaos:
    """The schedule: each event happens once this fraction of all steps has succeeded; each restart keeps
    the server down for its outage."""

    seed: int
    events: list[tuple[float, str]]  # (fraction, "kill worker <slot>" | "restart postgres")
    outages: list[float]
    workers: int = 2
    runs: int = RUNS
    worker_args: tuple[str, ...] = CHAOS_ARGS
    call_ms: tuple[int, int] = (40, 160)  # how long a run's calls take, drawn per run

    @classmethod
    def draw(cls, seed: int, kills: int = 2, restarts: int = 1, workers: int = 2, **kw: Any) -> Chaos:
        """Every worker slot killed at least once (while kills last), events in random order, one per
        window of 10 … 80 % done."""
        rng = random.Random(seed)
        slots = [i % workers for i in range(kills)]
        kinds = [f"kill worker {slot}" for slot in slots] + ["restart postgres"] * restarts
        rng.shuffle(kinds)
        width = 0.7 / len(kinds)
        events = [(round(rng.uniform(0.1 + i * width, 0.1 + (i + 0.8) * width), 3), kind)
                  for i, kind in enumerate(kinds)]
        return cls(seed, events, [round(rng.uniform(0.2, 1.5), 2) for _ in range(restarts)], workers, **kw)


def chaos_seed() -> int:
    given = os.environ.get("WF_CHAOS_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**32)


def test_chaos_kills_and_a_crash_restart_leave_every_run_final_and_every_step_succeeded_once(
        crash_server: CrashableServer, gateway: Gateway, start_worker: Callable[..., WorkerProcess]):
    run_chaos(Chaos.draw(chaos_seed()), crash_server, gateway, start_worker)


def run_chaos(chaos: Chaos, crash_server: CrashableServer, gateway: Gateway,
              start_worker: Callable[..., WorkerProcess]) -> None:
    began = time.monotonic()
    print(f"chaos seed {chaos.seed} (WF_CHAOS_SEED={chaos.seed} repeats it): {chaos.events}, "
          f"outages {chaos.outages} s")
    rng = random.Random(chaos.seed + 1)
    dsn = crash_server.dsn
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        define(conn, chaos_definition())
        queue = queue_of(conn, "chaos")
        with conn.transaction():
            run_ids = [str(conn.execute("select wf.enqueue('chaos', %s::jsonb) as id",
                                        (f'{{"ms": {rng.randint(*chaos.call_ms)}}}',)).fetchone()["id"])
                       for _ in range(chaos.runs)]
    total_steps = chaos.runs * len(STEPS)
    workers = [start_worker(dsn, *chaos.worker_args) for _ in range(chaos.workers)]
    outages = list(chaos.outages)
    survivors_of_restart: list[WorkerProcess] = []
    happened: list[str] = []
    released = 0
    db = Probe(dsn)
    pending = list(chaos.events)
    deadline = time.monotonic() + 120
    next_sweep = 0.0

    def diagnose() -> str:
        open_runs = db.rows("""select run_id, status, progress, current_steps, last_error from wf.runs_overview
                               where run_id = any(%s::uuid[]) and status <> 'completed' limit 10""", (run_ids,))
        return "\n".join([f"seed {chaos.seed}; happened: {happened}", *map(str, open_runs or []),
                          *(w.tail(15) for w in workers)])

    while True:
        row = db.rows(
            """select (select count(*) from wf.steps where run_id = any(%(ids)s::uuid[]) and status = 'succeeded')
                        as succeeded,
                      (select count(*) from wf.runs where id = any(%(ids)s::uuid[])
                        and status <> all(%(final)s)) as open""",
            {"ids": run_ids, "final": list(FINAL_RUN)})
        if row is not None:
            if row[0]["open"] == 0 and not pending:
                break
            if pending and row[0]["succeeded"] >= pending[0][0] * total_steps:
                event = pending.pop(0)[1]
                happened.append(f"{event} at {row[0]['succeeded']}/{total_steps} steps")
                if event == "restart postgres":
                    survivors_of_restart = list(workers)
                    db.close()
                    crash_server.crash()
                    time.sleep(outages.pop())  # the outage itself: nothing to wait out
                    crash_server.start()
                else:
                    slot = int(event.rsplit(" ", 1)[1])
                    workers[slot].kill()  # SIGKILL, calls in flight and steps claimed ahead
                    workers[slot] = start_worker(dsn, *chaos.worker_args)  # what a supervisor does
        if time.monotonic() >= next_sweep:
            released += release_orphans(db, gateway, run_ids, queue)
            next_sweep = time.monotonic() + 0.5
        for worker in workers:
            assert worker.proc.poll() is None, f"a worker exited by itself\n{worker.tail()}\n{diagnose()}"
        assert time.monotonic() < deadline, f"runs still open after 120 s\n{diagnose()}"
        time.sleep(0.1)
    db.close()
    for worker in workers:  # the survivors stop as usual
        worker.send(signal.SIGTERM)
    assert [worker.wait(30) for worker in workers] == [0] * len(workers)

    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        statuses = wait_final(conn, run_ids, 1)
        calls = chaos_calls(gateway, set(run_ids))
        events = conn.execute(
            """select id, run_id::text as run, step, attempt, kind, at, detail from wf.events
               where run_id = any(%s::uuid[]) and step is not null order by id""", (run_ids,)).fetchall()
        steps = conn.execute("select run_id::text as run, name as step, status, attempt from wf.steps "
                             "where run_id = any(%s::uuid[])", (run_ids,)).fetchall()
    failing = [c for c in calls if c["fails"]]
    lost = sum(e["kind"] == "attempt_lost" for e in events)
    summary = (f"seed {chaos.seed}: {'; '.join(happened)}; {len(calls)} calls for {total_steps} steps "
               f"({len(calls) / total_steps:.3f} per step), {len(failing)} failed on purpose, {lost} attempts lost, "
               f"{released} leases run out by the test, {time.monotonic() - began:.1f}s")
    print(summary)

    # the chaos happened: both workers killed mid-run, the server restarted under live workers
    assert len(happened) == len(chaos.events), summary
    assert lost > 0, summary
    noticed = [w for w in survivors_of_restart if {r.get("event") for r in w.logs()} & {
        "claim_failed", "side_task_failed", "database_unreachable"}]
    assert noticed, summary  # a worker that lived through the restart saw its connections go, and went on

    # every run is final: every step could succeed in the end, so every run completed
    assert set(statuses.values()) == {"completed"}, summary
    assert {(s["run"], s["step"]) for s in steps if s["status"] == "succeeded"} == \
        {(r, s) for r in run_ids for s in STEPS}, summary

    # no step succeeded twice; no attempt was started twice
    succeeded = Counter((e["run"], e["step"]) for e in events if e["kind"] == "succeeded")
    assert set(succeeded.values()) == {1} and len(succeeded) == total_steps, summary
    started = Counter((e["run"], e["step"], e["attempt"]) for e in events if e["kind"] == "started")
    assert max(started.values()) == 1, [k for k, n in started.items() if n > 1]

    # every step was called (the function's own record), and not much more than once
    assert {(c["run"], c["step"]) for c in calls} == {(r, s) for r in run_ids for s in STEPS}, summary
    assert len(calls) / total_steps <= MAX_CALLS_PER_STEP, summary
    # each attempt reached the function at most once (a duplicate claim would call it twice)
    per_attempt = Counter((c["run"], c["step"], c["attempt"]) for c in calls)
    assert max(per_attempt.values()) == 1, [k for k, n in per_attempt.items() if n > 1]

    # one call in eight failed, exactly those the test computes, and the engine recorded each answer
    # against the attempt that gave it: a success only for an attempt that succeeded, a retry for one that failed
    assert [c["fails"] for c in calls] == [call_fails(c["run"], c["step"], c["attempt"]) for c in calls]
    assert 1 / 16 < len(failing) / len(calls) < 1 / 4, summary
    verdict = {(c["run"], c["step"], c["attempt"]): c["fails"] for c in calls}
    for e in events:
        if e["kind"] in ("succeeded", "retrying"):
            assert verdict.get((e["run"], e["step"], e["attempt"])) == (e["kind"] == "retrying"), (e, summary)

    # fan-in never ran early: the join's first call arrived after the successful call of each of its four
    # dependencies had answered (the function's sequence numbers), and every call of it saw them succeeded
    attempt_of = {(s["run"], s["step"]): s["attempt"] for s in steps}
    by_attempt = {(c["run"], c["step"], c["attempt"]): c for c in calls}
    for run_id in run_ids:
        joins = [c for c in calls if c["run"] == run_id and c["step"] == "join"]
        first = min(c["arrived"] for c in joins)
        for fan in FANS:
            answered = by_attempt[(run_id, fan, attempt_of[(run_id, fan)])]["answered"]
            assert answered is not None and answered < first, \
                f"run {run_id}: join called (#{first}) before {fan}'s successful call answered (#{answered}); {summary}"
        assert all(c["payload"]["deps"] == dict.fromkeys(FANS, "succeeded") for c in joins), joins
    # and in the database's history: the join's first attempt started after the last dependency succeeded
    first_start: dict[str, Any] = {}
    last_dependency: dict[str, Any] = defaultdict(lambda: None)
    for e in events:
        if e["step"] == "join" and e["kind"] == "started":
            first_start.setdefault(e["run"], e)
        elif e["step"] in FANS and e["kind"] == "succeeded":
            prev = last_dependency[e["run"]]
            last_dependency[e["run"]] = e if prev is None or e["id"] > prev["id"] else prev
    for run_id in run_ids:
        dep, join = last_dependency[run_id], first_start[run_id]
        assert dep["id"] < join["id"] and dep["at"] <= join["at"], (dep, join)


# ---- eight workers, one database --------------------------------------------------------------------------

STAGES = ["echo", "chaos", "noop", "misbehave"]


def stages_definition() -> dict[str, Any]:
    """a (echo) → b (chaos), c (noop), d (misbehave) → e (echo): four stages, a fan-out and a fan-in."""
    return {"name": "eight", "max_retries": 10, "backoff": {"delays": [0]}, "steps": [
        {"name": "a", "function": "echo", "action": "go"},
        {"name": "b", "depends_on": ["a"], "function": "chaos", "action": "call", "payload_template": {"ms": 10}},
        {"name": "c", "depends_on": ["a"], "function": "noop", "action": "go"},
        {"name": "d", "depends_on": ["a"], "function": "misbehave", "action": "slow", "payload_template": {"ms": 10}},
        {"name": "e", "depends_on": ["b", "c", "d"], "function": "echo", "action": "go"},
    ]}


STAGE_OF = {"a": "echo", "b": "chaos", "c": "noop", "d": "misbehave", "e": "echo"}


def test_eight_workers_on_one_database_never_claim_an_attempt_twice_and_serve_every_stage(
        db: str, conn: psycopg.Connection, gateway: Gateway, start_worker: Callable[..., WorkerProcess]):
    define(conn, stages_definition())
    # four workers serve every stage, four one stage each
    served: list[tuple[str, ...]] = [(), (), (), (), *((s,) for s in STAGES)]
    workers = [start_worker(db, "--concurrency", "4", "--poll-interval", "0.2",
                            *(("--stages", ",".join(stages)) if stages else ())) for stages in served]
    for worker in workers:
        worker.wait_started(30)
    with conn.transaction():  # all at once: eight workers race for the same messages
        run_ids = [str(conn.execute("select wf.enqueue('eight') as id").fetchone()["id"]) for _ in range(80)]
    statuses = wait_final(conn, run_ids, 90)
    assert set(statuses.values()) == {"completed"}
    for worker in workers:
        assert worker.proc.poll() is None, worker.tail()
        worker.send(signal.SIGTERM)
    assert [worker.wait(30) for worker in workers] == [0] * len(workers)

    events = conn.execute("""select run_id::text as run, step, attempt, kind from wf.events
                             where run_id = any(%s::uuid[]) and step is not null""", (run_ids,)).fetchall()
    started = Counter((e["run"], e["step"], e["attempt"]) for e in events if e["kind"] == "started")
    assert max(started.values()) == 1, [k for k, n in started.items() if n > 1]
    succeeded = Counter((e["run"], e["step"]) for e in events if e["kind"] == "succeeded")
    assert len(succeeded) == len(run_ids) * len(STAGE_OF) and set(succeeded.values()) == {1}
    # nobody died here: a message claimed while another worker held it would show as a lost attempt (and
    # its answer as stale); every attempt after a step's first is one its failure asked for
    assert [e for e in events if e["kind"] in ("attempt_lost", "stale_answer")] == []
    retried = Counter((e["run"], e["step"]) for e in events if e["kind"] == "retrying")
    assert Counter((run, step) for run, step, _ in started) == Counter(
        {key: 1 + retried[key] for key in succeeded})

    # the workers' side (one log line per call): each started attempt was called by one worker, once
    callers: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    calls_by_worker: list[Counter[str]] = [Counter() for _ in workers]
    for i, worker in enumerate(workers):
        for r in worker.logs():
            if r.get("event") == "call" and r["run_id"] in statuses:
                callers[(r["run_id"], r["step"], r["attempt"])].append(i)
                calls_by_worker[i][r["function"]] += 1
    assert set(callers) == set(started)
    print("calls per worker and stage:", [dict(c) for c in calls_by_worker])
    assert {k: v for k, v in callers.items() if len(v) > 1} == {}
    # the function's side agrees for the chaos stage: each attempt reached it once
    chaos_attempts = Counter((c["run"], c["step"], c["attempt"]) for c in chaos_calls(gateway, set(run_ids)))
    assert chaos_attempts == Counter(k for k in started if k[1] == "b")

    # every stage was served, and a worker given --stages called nothing else
    assert {s for c in calls_by_worker for s in c} == set(STAGES)
    for stages, mine in zip(served, calls_by_worker, strict=True):
        if stages:
            assert set(mine) <= set(stages), (stages, mine)
    assert sum(1 for c in calls_by_worker if c) >= 5, calls_by_worker  # the work was shared
