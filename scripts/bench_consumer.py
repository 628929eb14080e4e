"""End-to-end benchmark of the wf worker (run by scripts/bench).

Phases, all against the same PostgreSQL and the same Deno no-op function:
1. ceiling: a raw loop with the same concurrency — pgmq read → the same HTTP POST with
   aiohttp → archive + send the next message in one transaction;
2. throughput: N runs of a 3-step workflow drained by `wf worker --concurrency C`, timed
   from its first claim to its last answer; WAL bytes and write transactions per step
   measured over this phase;
3. idle latency: single runs enqueued one at a time with the worker idle (LISTEN);
   enqueue → first call answered, and enqueue → run finished;
4. memory: the worker's peak RSS with 200 calls in flight (a function that sleeps).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import orjson
from wf import db
from wf.install import install

STEPS = 3
REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def counters(conn: asyncpg.Connection) -> tuple[int, int]:
    row = await conn.fetchrow(
        "select txid_snapshot_xmax(txid_current_snapshot()) as next_xid, "
        "pg_current_wal_insert_lsn() - '0/0'::pg_lsn as wal")
    # transactions that wrote: each took a transaction id (read-only ones take none)
    return int(row["next_xid"]), int(row["wal"])


async def ceiling(dsn: str, url: str, token: str, runs: int, concurrency: int, tag: str) -> float:
    """Steps/s of the raw loop: the most this machine gives for this shape of work."""
    conn = await db.connect(dsn)
    queue = f"bench_ceiling_{tag}"
    await conn.execute("select pgmq.create($1)", queue)
    await conn.execute("select pgmq.send($2, jsonb_build_object('run', n, 'step', 0)) "
                       "from generate_series(1, $1) n", runs, queue)
    await conn.close()
    pool = await db.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    async def loop(session: aiohttp.ClientSession) -> None:
        idle = 0
        while idle < 3:
            rows = await pool.fetch("select msg_id, message from pgmq.read($1, 30, 1)", queue)
            if not rows:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            msg = rows[0]
            body = orjson.dumps({"action": "go", "payload": msg["message"]})
            async with session.post(f"{url}/noop", data=body, headers=headers) as response:
                await response.read()
            # archive + send the next in one statement: one round trip, one transaction
            step = msg["message"]["step"]
            await pool.execute(
                "select pgmq.archive($5, $1::bigint), "
                "(select pgmq.send($5, $4::jsonb) where $2::int < $3::int)",
                msg["msg_id"], step + 1, STEPS, {"run": msg["message"]["run"], "step": step + 1}, queue)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(loop(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    await pool.close()
    return runs * STEPS / seconds


def start_worker(dsn: str, url: str, token: str, concurrency: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WF_DATABASE_URL": dsn, "WF_FUNCTIONS_URL": url, "WF_FUNCTIONS_TOKEN": token}
    return subprocess.Popen([str(REPO / ".venv/bin/wf"), "worker", "--concurrency", str(concurrency), *extra],
                            env=env, stdout=subprocess.DEVNULL)


async def wait_finished(conn: asyncpg.Connection, workflow: str, runs: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = await conn.fetchval("select count(*) from wf.runs where workflow = $1 and status = 'completed'",
                                   workflow)
        if done >= runs:
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"bench: {workflow} did not finish within {timeout}s")


async def throughput(dsn: str, url: str, token: str, runs: int, concurrency: int,
                     tag: str) -> tuple[float, float, float]:
    workflow = f"bench-{tag}"
    conn = await db.connect(dsn)
    await conn.fetchval("select wf.define($1::jsonb)", {"name": workflow, "steps": [
        {"name": f"s{i}", "function": "noop", "action": "go", "payload_template": {"run": "{{ n }}", "i": i}}
        for i in range(STEPS)]})
    # checkpoint first: rows written after it cost page-init records, not full-page images,
    # as in steady state where work is enqueued and processed within one checkpoint cycle
    await conn.execute("checkpoint")
    await conn.execute("select wf.enqueue($2, jsonb_build_object('n', n)) from generate_series(1, $1) n",
                       runs, workflow)
    commits0, wal0 = await counters(conn)
    worker = start_worker(dsn, url, token, concurrency)
    try:
        await wait_finished(conn, workflow, runs)
    finally:
        worker.terminate()
        worker.wait(30)
    # timed from the worker's first claim to its last answer, by the database's clock: the
    # process start-up (imports, pool) is left out, as the ceiling leaves out its pool set-up
    seconds = await conn.fetchval(
        "select extract(epoch from max(s.finished_at) - min(s.started_at))::float8 "
        "from wf.steps s join wf.runs r on r.id = s.run_id where r.workflow = $1", workflow)
    await asyncio.sleep(0.5)
    commits1, wal1 = await counters(conn)
    await conn.close()
    steps = runs * STEPS
    return steps / seconds, (wal1 - wal0) / steps, (commits1 - commits0) / steps


async def idle_latency(dsn: str, url: str, token: str, samples: int) -> tuple[list[float], list[float]]:
    """Enqueue → the function receives the first call (its `clock` answer says when), and
    enqueue → the 3-step run finished; one run at a time with the worker idle."""
    conn = await db.connect(dsn)
    await conn.fetchval("select wf.define($1::jsonb)", {"name": "bench-idle", "steps": [
        {"name": f"s{i}", "function": "clock", "action": "go", "payload_template": {"i": i}} for i in range(STEPS)]})
    worker = start_worker(dsn, url, token, 16, "--poll-interval", "1")
    first_call: list[float] = []
    whole_run: list[float] = []
    try:
        await asyncio.sleep(1.5)  # the worker connects and LISTENs
        for _ in range(samples):
            enqueued = time.time()
            run_id = await conn.fetchval("select wf.enqueue('bench-idle')")
            # the run's own timestamps tell when it finished: a tight poll here would compete
            # with the worker for the CPUs and slow down what it measures
            while await conn.fetchval("select status from wf.runs where id = $1", run_id) != "completed":
                await asyncio.sleep(0.01)
            received, finished = await conn.fetchrow(
                "select (s.output ->> 'received_at')::float8, extract(epoch from r.finished_at)::float8 "
                "from wf.runs r join wf.steps s on s.run_id = r.id and s.name = 's0' where r.id = $1", run_id)
            first_call.append(received - enqueued * 1000)
            whole_run.append((finished - enqueued) * 1000)
            await asyncio.sleep(0.02)
    finally:
        worker.terminate()
        worker.wait(30)
        await conn.close()
    return first_call, whole_run


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def memory(dsn: str, url: str, token: str, in_flight: int) -> tuple[float, int]:
    conn = await db.connect(dsn)
    await conn.fetchval("select wf.define($1::jsonb)", {"name": "bench-slow", "steps": [
        {"name": "wait", "function": "misbehave", "action": "slow", "payload_template": {"ms": 3000}}]})
    await conn.execute("select wf.enqueue('bench-slow') from generate_series(1, $1)", in_flight)
    worker = start_worker(dsn, url, token, in_flight)
    peak, most_running = 0.0, 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = await conn.fetchval("select count(*) from wf.steps where function = 'misbehave' "
                                          "and status = 'running'")
            most_running = max(most_running, running)
            peak = max(peak, rss_mb(worker.pid))
            if await conn.fetchval("select count(*) from wf.runs where workflow = 'bench-slow' "
                                   "and status = 'completed'") >= in_flight:
                break
            await asyncio.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(30)
        await conn.close()
    return peak, most_running


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--functions-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--idle-samples", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="alternate ceiling and worker; report medians")
    args = parser.parse_args()
    await install(args.dsn, cron=False)

    ceilings: list[float] = []
    runs: list[tuple[float, float, float]] = []
    for i in range(args.rounds):
        ceilings.append(await ceiling(args.dsn, args.functions_url, args.token, args.runs, args.concurrency, str(i)))
        print(f"round {i + 1} ceiling (raw pgmq + aiohttp loop): {ceilings[-1]:,.0f} steps/s", flush=True)
        runs.append(await throughput(args.dsn, args.functions_url, args.token, args.runs, args.concurrency, str(i)))
        print(f"round {i + 1} wf worker: {runs[-1][0]:,.0f} steps/s, {runs[-1][1]:,.0f} WAL bytes/step, "
              f"{runs[-1][2]:.2f} write transactions/step", flush=True)
    ceiling_rate = statistics.median(ceilings)
    rate, wal_per_step, _ = sorted(runs)[len(runs) // 2]
    first_call, whole_run = await idle_latency(args.dsn, args.functions_url, args.token, args.idle_samples)
    print(f"idle enqueue→first call received: p50 {statistics.median(first_call):.1f} ms, "
          f"p99 {pct(first_call, 0.99):.1f} ms; enqueue→run finished (3 steps): "
          f"p50 {statistics.median(whole_run):.1f} ms, p99 {pct(whole_run, 0.99):.1f} ms", flush=True)
    peak, most_running = await memory(args.dsn, args.functions_url, args.token, 200)
    print(f"worker peak RSS {peak:.0f} MB with {most_running} calls in flight", flush=True)
    print(f"steps/s={rate:.0f} ceiling={ceiling_rate:.0f} ratio={rate / ceiling_rate:.2f} "
          f"idle_p50_ms={statistics.median(first_call):.1f} idle_p99_ms={pct(first_call, 0.99):.1f} "
          f"wal_bytes/step={wal_per_step:.0f}")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        import uvloop  # the worker runs on uvloop too; the ceiling gets the same advantage
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
