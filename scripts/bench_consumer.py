"""End-to-end benchmark of the wf worker (run by scripts/bench).

Phases, all against the same PostgreSQL and the same Deno no-op function:
1. throughput, in rounds alternating a ceiling and the worker on the same work (N runs of a
   3-step workflow), at concurrency 16 (`--rounds` pairs, the headline) and 64, and at concurrency
   16 with `--big-runs` runs:
   - ceiling: a batched raw pgmq loop — one reader keeps C calls in flight, reading as many
     messages as slots are free; the same HTTP POST with aiohttp; answers archived and their
     next steps sent (send_batch) in one transaction per flushed batch;
   - wf: `wf worker --concurrency C`, timed from its first claim to its last answer. Measured
     over that window: WAL bytes and write transactions per step; CPU time of the worker, the
     Deno gateway and PostgreSQL (psutil, process trees) per step; the worker's
     wf_worker_stall_seconds_total (slot-seconds free while a stage had messages ready) and
     wf_worker_idle_slot_seconds_total from its /metrics;
2. flow control used but not binding (a concurrency key per run, limit 1, all keys distinct;
   stage limits far above the load), alternating with plain rounds: steps/s ratios;
   map: one step over 100 items (for_each), alternating with plain-step rounds at the same
   concurrency (`--other-rounds` pairs): items/s against steps/s in the same run;
3. idle latency: single runs enqueued one at a time with the worker idle (LISTEN);
   enqueue → first call answered, and enqueue → run finished;
4. memory: the worker's peak RSS with 200 calls in flight (a function that sleeps).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from bench_procs import CpuSampler, free_port, scrape_counters, tree_cpu
from wf import db
from wf.install import install

STEPS = 3
MAP_ITEMS = 100  # the map round: one step over this many items per run
REPO = Path(__file__).resolve().parents[1]
# the ceiling's answers are flushed by one lane taking everything waiting: the fastest of the
# shapes tried (1, 2 or 4 lanes; batches of 64 or unbounded; separate batch loops; slots held
# until the flush) on this machine
FLUSH_LANES = 1
FLUSH_BATCH = 1000
STALL = "wf_worker_stall_seconds_total"
IDLE_SLOTS = "wf_worker_idle_slot_seconds_total"


@dataclass
class Measure:
    steps: int
    seconds: float
    wal_per_step: float
    commits_per_step: float
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by process tree over the window
    stall: float = math.nan  # slot-seconds
    idle_slots: float = math.nan

    @property
    def rate(self) -> float:
        return self.steps / self.seconds

    @property
    def cpu_ms_per_step(self) -> float:
        return sum(self.cpu.values()) * 1000 / self.steps

    @property
    def stall_ms_per_1k(self) -> float:
        return self.stall * 1000 / self.steps * 1000

    def cpu_text(self) -> str:
        parts = ", ".join(f"{name} {seconds * 1000 / self.steps:.2f}" for name, seconds in self.cpu.items())
        return f"{self.cpu_ms_per_step:.2f} CPU ms/step ({parts})"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def counters(conn: asyncpg.Connection) -> tuple[int, int]:
    row = await conn.fetchrow(
        "select txid_snapshot_xmax(txid_current_snapshot()) as next_xid, "
        "pg_current_wal_insert_lsn() - '0/0'::pg_lsn as wal")
    # transactions that wrote: each took a transaction id (read-only ones take none)
    return int(row["next_xid"]), int(row["wal"])


async def ceiling(dsn: str, url: str, token: str, runs: int, concurrency: int, tag: str,
                  procs: dict[str, int]) -> Measure:
    """Steps/s of a raw pgmq loop doing the same work: the most this machine gives for it.

    One reader keeps `concurrency` calls in flight: as soon as slots are free it reads as many
    messages (`pgmq.read(queue, 30, free)`) and starts a call for each; a slot is free again when
    its call has answered (its message stays invisible until the flush archives it). Answers are
    group-committed: a flush lane takes every answer waiting and archives them and sends their next
    steps (`pgmq.archive` with the ids, `pgmq.send_batch`) in one statement, one transaction.
    """
    conn = await db.connect(dsn)
    queue = f"bench_ceiling_{tag}"
    await conn.execute("select pgmq.create($1)", queue)
    await conn.execute("select pgmq.send($2, jsonb_build_object('run', n, 'step', 0)) "
                       "from generate_series(1, $1) n", runs, queue)
    await conn.execute("checkpoint")
    commits0, wal0 = await counters(conn)
    pool = await db.create_pool(dsn, min_size=1 + FLUSH_LANES, max_size=1 + FLUSH_LANES)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    total = runs * STEPS
    answers: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    wake = asyncio.Event()  # a slot freed, or a flush sent new messages
    state = {"busy": 0, "flushed": 0, "sends": 0}
    finished = asyncio.Event()  # every step flushed, or a call failed
    failures: list[str] = []
    calls: set[asyncio.Task[None]] = set()

    async def call(session: aiohttp.ClientSession, msg_id: int, message: dict[str, Any]) -> None:
        body = orjson.dumps({"action": "go", "payload": message})
        try:
            async with session.post(f"{url}/noop", data=body, headers=headers) as response:
                await response.read()
        except aiohttp.ClientError as exc:
            failures.append(f"the ceiling's call failed: {type(exc).__name__}: {exc}")
            finished.set()
            return
        if response.status != 200:
            failures.append(f"the ceiling's call answered HTTP {response.status}")
            finished.set()
            return
        state["busy"] -= 1
        wake.set()
        answers.put_nowait((msg_id, message))

    async def read(session: aiohttp.ClientSession) -> None:
        drained_at = -1  # the flush count at which a read found the queue empty
        while not finished.is_set():
            wake.clear()
            free = concurrency - state["busy"]
            if free > 0 and drained_at != state["sends"]:
                sends = state["sends"]
                rows = await pool.fetch("select msg_id, message from pgmq.read($1, 30, $2)", queue, free)
                for row in rows:
                    state["busy"] += 1
                    task = asyncio.create_task(call(session, row["msg_id"], row["message"]))
                    calls.add(task)
                    task.add_done_callback(calls.discard)
                if len(rows) < free:
                    drained_at = sends
                continue
            await wake.wait()

    async def flush() -> None:
        while True:
            batch = [await answers.get()]
            while len(batch) < FLUSH_BATCH and not answers.empty():
                batch.append(answers.get_nowait())
            following = [{"run": m["run"], "step": m["step"] + 1} for _, m in batch if m["step"] + 1 < STEPS]
            ids = [msg_id for msg_id, _ in batch]
            if following:  # send_batch refuses an empty array
                await pool.execute("select (select count(*) from pgmq.archive($1, $2::bigint[])), "
                                   "(select count(*) from pgmq.send_batch($1, $3::jsonb[]))", queue, ids, following)
            else:
                await pool.execute("select count(*) from pgmq.archive($1, $2::bigint[])", queue, ids)
            state["flushed"] += len(batch)
            state["sends"] += 1
            wake.set()
            if state["flushed"] >= total:
                finished.set()

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        cpu0 = {name: tree_cpu(pid) for name, pid in procs.items()}
        started = time.perf_counter()
        lanes = [asyncio.create_task(flush()) for _ in range(FLUSH_LANES)]
        reader = asyncio.create_task(read(session))
        waiting = asyncio.create_task(finished.wait())
        done, _ = await asyncio.wait([waiting, reader, *lanes], timeout=900, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            failures.append(f"the ceiling did not finish within 900s ({state['flushed']} of {total} steps)")
        seconds = time.perf_counter() - started
        cpu1 = {name: tree_cpu(pid) for name, pid in procs.items()}
        for task in [waiting, reader, *lanes, *calls]:
            task.cancel()
        await asyncio.gather(waiting, reader, *lanes, *calls, return_exceptions=True)
        for task in done:
            if task is not waiting:
                task.result()  # a failed reader or lane ends the benchmark with its error
        if failures:
            raise SystemExit(f"bench: {failures[0]}")
    await pool.close()
    await asyncio.sleep(0.5)
    commits1, wal1 = await counters(conn)
    await conn.close()
    return Measure(steps=total, seconds=seconds, wal_per_step=(wal1 - wal0) / total,
                   commits_per_step=(commits1 - commits0) / total,
                   cpu={name: cpu1[name] - cpu0[name] for name in cpu0})


def start_worker(dsn: str, url: str, token: str, concurrency: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WF_DATABASE_URL": dsn, "WF_FUNCTIONS_URL": url, "WF_FUNCTIONS_TOKEN": token}
    return subprocess.Popen([str(REPO / ".venv/bin/wf"), "worker", "--concurrency", str(concurrency), *extra],
                            env=env, stdout=subprocess.DEVNULL)


async def wait_finished(conn: asyncpg.Connection, workflow: str, created: datetime.datetime, runs: int,
                        timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # the round's runs only (one enqueue statement: one created_at), through its index
        done = await conn.fetchval("select count(*) from wf.runs where created_at = $1 and workflow = $2 "
                                   "and status = 'completed'", created, workflow)
        if done >= runs:
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"bench: {workflow} did not finish within {timeout}s")


async def throughput(dsn: str, url: str, token: str, runs: int, concurrency: int, tag: str,
                     procs: dict[str, int], extra: dict[str, Any] | None = None) -> Measure:
    workflow = f"bench-{tag}"
    conn = await db.connect(dsn)
    await conn.fetchval("select wf.define($1::jsonb)", {"name": workflow, **(extra or {}), "steps": [
        {"name": f"s{i}", "function": "noop", "action": "go", "payload_template": {"run": "{{ n }}", "i": i}}
        for i in range(STEPS)]})
    # checkpoint first: rows written after it cost page-init records, not full-page images,
    # as in steady state where work is enqueued and processed within one checkpoint cycle
    await conn.execute("checkpoint")
    created = await conn.fetchval(
        "with e as (select wf.enqueue($2, jsonb_build_object('n', n)) from generate_series(1, $1) n) "
        "select now() from (select count(*) from e) c", runs, workflow)
    commits0, wal0 = await counters(conn)
    port = free_port()
    worker = start_worker(dsn, url, token, concurrency, "--metrics-port", str(port))
    sampler = CpuSampler({"worker": worker.pid, **procs})
    sampler.start()
    try:
        await wait_finished(conn, workflow, created, runs)
        await sampler.stop()
        # slot-seconds free while a stage had work ready (stall), and free at all (idle)
        metrics = await scrape_counters(port, STALL, IDLE_SLOTS)
    finally:
        await sampler.stop()
        worker.terminate()
        worker.wait(30)
    # timed from the worker's first claim to its last answer, by the database's clock: the
    # process start-up (imports, pool) is left out, as the ceiling leaves out its pool set-up
    first, last = await conn.fetchrow(
        "select extract(epoch from min(s.started_at))::float8, extract(epoch from max(s.finished_at))::float8 "
        "from wf.steps s join wf.runs r on r.id = s.run_id where r.workflow = $1", workflow)
    await asyncio.sleep(0.5)
    commits1, wal1 = await counters(conn)
    await conn.close()
    steps = runs * STEPS
    return Measure(steps=steps, seconds=last - first, wal_per_step=(wal1 - wal0) / steps,
                   commits_per_step=(commits1 - commits0) / steps, cpu=sampler.between(first, last),
                   stall=metrics[STALL], idle_slots=metrics[IDLE_SLOTS])


async def map_throughput(dsn: str, url: str, token: str, items: int, concurrency: int, tag: str) -> float:
    """One map step over MAP_ITEMS items per run (for_each), runs enough for `items` items: items/s from the
    first item's start to the last item's end (the map steps' own claims and expansions included)."""
    workflow = f"bench-map-{tag}"
    conn = await db.connect(dsn)
    await conn.fetchval("select wf.define($1::jsonb)", {"name": workflow, "steps": [
        {"name": "each", "function": "noop", "action": "go", "for_each": "{{ items }}",
         "payload_template": {"item": "{{ item }}"}}]})
    runs = max(1, items // MAP_ITEMS)
    await conn.execute("checkpoint")
    created = await conn.fetchval(
        "with e as (select wf.enqueue($2, jsonb_build_object('items', "
        "(select jsonb_agg(i) from generate_series(1, $3) i))) from generate_series(1, $1)) "
        "select now() from (select count(*) from e) c", runs, workflow, MAP_ITEMS)
    worker = start_worker(dsn, url, token, concurrency)
    try:
        await wait_finished(conn, workflow, created, runs)
    finally:
        worker.terminate()
        worker.wait(30)
    first, last = await conn.fetchrow(
        "select extract(epoch from min(s.started_at))::float8, extract(epoch from max(s.finished_at))::float8 "
        "from wf.steps s join wf.runs r on r.id = s.run_id where r.workflow = $1 and s.map_step is not null",
        workflow)
    await conn.close()
    return runs * MAP_ITEMS / (last - first)


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


def median_of(measures: list[Measure], value: Any) -> float:
    return statistics.median(value(m) for m in measures)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--functions-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--gateway-pid", type=int, required=True, help="the Deno gateway: its CPU is counted")
    parser.add_argument("--pg-pid", type=int, required=True, help="the postmaster: its CPU and its children's count")
    parser.add_argument("--runs", type=int, default=2000, help="runs per round (3 steps each)")
    parser.add_argument("--big-runs", type=int, default=10000, help="runs per round of the large rounds")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--c64-concurrency", type=int, default=64, help="the concurrency of the high rounds")
    parser.add_argument("--rounds", type=int, default=3,
                        help="ceiling/worker pairs at --concurrency and --runs (the headline); medians")
    parser.add_argument("--other-rounds", type=int, default=3,
                        help="ceiling/worker pairs at --c64-concurrency, and at --big-runs")
    parser.add_argument("--idle-samples", type=int, default=200)
    args = parser.parse_args()
    await install(args.dsn, cron=False)
    procs = {"function": args.gateway_pid, "postgres": args.pg_pid}
    url, token = args.functions_url, args.token

    async def rounds(count: int, runs: int, concurrency: int) -> tuple[list[Measure], list[Measure]]:
        label = f"c{concurrency} N={runs:,}"
        ceilings: list[Measure] = []
        workers: list[Measure] = []
        for i in range(count):
            tag = f"c{concurrency}_n{runs}_{i}"
            c = await ceiling(args.dsn, url, token, runs, concurrency, tag, {"loop": os.getpid(), **procs})
            ceilings.append(c)
            print(f"round {i + 1} {label} ceiling (batched raw pgmq + aiohttp loop): {c.rate:,.0f} steps/s, "
                  f"{c.wal_per_step:,.0f} WAL bytes/step, {c.commits_per_step:.2f} write transactions/step, "
                  f"{c.cpu_text()}", flush=True)
            w = await throughput(args.dsn, url, token, runs, concurrency, tag, procs)
            workers.append(w)
            print(f"round {i + 1} {label} wf worker: {w.rate:,.0f} steps/s (ratio {w.rate / c.rate:.2f}), "
                  f"{w.wal_per_step:,.0f} WAL bytes/step, {w.commits_per_step:.2f} write transactions/step, "
                  f"{w.cpu_text()}, stall {w.stall * 1000:,.0f} ms ({w.stall_ms_per_1k:.1f} ms per 1,000 steps), "
                  f"idle slots {w.idle_slots:,.1f} slot-s", flush=True)
        return ceilings, workers

    head_ceilings, head_workers = await rounds(args.rounds, args.runs, args.concurrency)
    high_ceilings, high_workers = await rounds(args.other_rounds, args.runs, args.c64_concurrency)
    big_ceilings, big_workers = await rounds(args.other_rounds, args.big_runs, args.concurrency)

    def rate(m: Measure) -> float:
        return m.rate

    ceiling_rate = median_of(head_ceilings, rate)
    steps_rate = median_of(head_workers, rate)
    high_rate = median_of(high_workers, rate)
    big_rate = median_of(big_workers, rate)
    stall = median_of(head_workers, lambda m: m.stall_ms_per_1k)
    cpu = median_of(head_workers, lambda m: m.cpu_ms_per_step)
    wal = median_of(head_workers, lambda m: m.wal_per_step)
    print(f"c{args.c64_concurrency} N={args.runs:,}: wf {high_rate:,.0f} steps/s, "
          f"ceiling {median_of(high_ceilings, rate):,.0f} steps/s", flush=True)
    print(f"c{args.concurrency} N={args.big_runs:,}: wf {big_rate:,.0f} steps/s, "
          f"ceiling {median_of(big_ceilings, rate):,.0f} steps/s; "
          f"wf at N={args.big_runs:,} / wf at N={args.runs:,}: {big_rate / steps_rate:.2f}", flush=True)
    print(f"stall_ms below: the worker's slot-time free while a stage had messages ready, in ms per 1,000 steps "
          f"(c{args.concurrency} N={args.runs:,}, median); cpu_ms/step: worker + Deno gateway + PostgreSQL "
          f"CPU time over the same window, per step", flush=True)

    # flow control when it is used but not binding: a concurrency key per run (limit 1, every key
    # distinct), and a stage rate limit far above the load, alternating with plain rounds
    flow: dict[str, list[float]] = {"plain": [], "keyed": [], "rate_limited": []}
    for i in range(args.other_rounds):
        flow["plain"].append((await throughput(args.dsn, url, token, args.runs, args.concurrency, f"fp{i}",
                                               procs)).rate)
        flow["keyed"].append((await throughput(args.dsn, url, token, args.runs, args.concurrency, f"fk{i}", procs,
                                               {"concurrency": {"key": "n", "limit": 1}})).rate)
        conn = await db.connect(args.dsn)
        await conn.execute("select wf.configure_stage('noop', max_concurrency => 10000, "
                           "rate_per_second => 100000, burst => 100000)")
        try:
            flow["rate_limited"].append((await throughput(args.dsn, url, token, args.runs, args.concurrency,
                                                          f"fr{i}", procs)).rate)
        finally:
            await conn.execute("select wf.configure_stage('noop')")
            await conn.close()
        print(f"round {i + 1} flow control: plain {flow['plain'][-1]:,.0f}, concurrency key per run "
              f"{flow['keyed'][-1]:,.0f}, stage limits far above the load {flow['rate_limited'][-1]:,.0f} steps/s",
              flush=True)
    plain = statistics.median(flow["plain"])
    print(f"flow control: concurrency key {statistics.median(flow['keyed']) / plain:.2f}, stage limits "
          f"{statistics.median(flow['rate_limited']) / plain:.2f} of the plain rate ({plain:,.0f} steps/s)", flush=True)

    # the map round, alternating with plain steps at the same concurrency: items/s against steps/s
    map_rates: list[float] = []
    plain_rates: list[float] = []
    for i in range(args.other_rounds):
        map_rates.append(await map_throughput(args.dsn, url, token, args.runs * STEPS, args.concurrency, f"m{i}"))
        plain_rates.append((await throughput(args.dsn, url, token, args.runs, args.concurrency, f"p{i}", procs)).rate)
        print(f"round {i + 1} map (one step over {MAP_ITEMS} items): {map_rates[-1]:,.0f} items/s; "
              f"plain steps: {plain_rates[-1]:,.0f} steps/s", flush=True)
    map_rate, plain_rate = statistics.median(map_rates), statistics.median(plain_rates)
    print(f"map: {map_rate:,.0f} items/s = {map_rate / plain_rate:.2f} of the plain-step rate ({plain_rate:,.0f} "
          f"steps/s) in the same run (c{args.concurrency}, {args.runs * STEPS:,} items per round)", flush=True)

    first_call, whole_run = await idle_latency(args.dsn, url, token, args.idle_samples)
    print(f"idle enqueue→first call received: p50 {statistics.median(first_call):.1f} ms, "
          f"p99 {pct(first_call, 0.99):.1f} ms; enqueue→run finished (3 steps): "
          f"p50 {statistics.median(whole_run):.1f} ms, p99 {pct(whole_run, 0.99):.1f} ms", flush=True)
    peak, most_running = await memory(args.dsn, url, token, 200)
    print(f"worker peak RSS {peak:.0f} MB with {most_running} calls in flight", flush=True)
    print(f"steps/s={steps_rate:.0f} ceiling={ceiling_rate:.0f} ratio={steps_rate / ceiling_rate:.2f} "
          f"c64_steps/s={high_rate:.0f} n10k_ratio={big_rate / steps_rate:.2f} "
          f"idle_p50_ms={statistics.median(first_call):.1f} idle_p99_ms={pct(first_call, 0.99):.1f} "
          f"stall_ms={stall:.1f} cpu_ms/step={cpu:.2f} wal_bytes/step={wal:.0f}")
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        import uvloop  # the worker runs on uvloop too; the ceiling gets the same advantage
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
