"""SQL-only benchmark of the wf state machine against raw pgmq (run by scripts/bench-sql).

Both sides do the same shape of work on the same server in the same run:
- wf:  N runs of a 3-step workflow; workers loop wf.claim(stage, 1) → wf.complete(...)
- raw: N chains of 3 messages; workers loop pgmq.read(q, vt, 1) → (archive + send next) in one transaction
It prints steps/s for both, their ratio, commits and WAL bytes per step.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import asyncpg
from wf import db
from wf.install import install

STEPS = 3


@dataclass
class Result:
    steps: int
    seconds: float
    commits: int
    wal_bytes: int

    @property
    def rate(self) -> float:
        return self.steps / self.seconds


async def _counters(conn: asyncpg.Connection) -> tuple[int, int]:
    row = await conn.fetchrow(
        "select txid_snapshot_xmax(txid_current_snapshot()) as next_xid, "
        "pg_current_wal_insert_lsn() - '0/0'::pg_lsn as wal")
    # transactions that wrote: each took a transaction id (read-only ones take none)
    return int(row["next_xid"]), int(row["wal"])


async def _measure(dsn: str, workers: int, body, steps: int) -> Result:  # type: ignore[no-untyped-def]
    conns = [await db.connect(dsn) for _ in range(workers)]
    probe = await asyncpg.connect(dsn)
    try:
        commits0, wal0 = await _counters(probe)
        started = time.perf_counter()
        await asyncio.gather(*(body(c) for c in conns))
        seconds = time.perf_counter() - started
        commits1, wal1 = await _counters(probe)
    finally:
        for c in conns:
            if not c.is_closed():
                await c.close()
        await probe.close()
    return Result(steps, seconds, commits1 - commits0, wal1 - wal0)


async def bench_wf(dsn: str, runs: int, workers: int, tag: str) -> Result:
    workflow = f"bench-sql-{tag}"
    conn = await db.connect(dsn)
    definition = {"name": workflow, "steps": [
        {"name": f"s{i}", "function": "noop", "action": "go", "payload_template": {"i": i}} for i in range(STEPS)]}
    await conn.fetchval("select wf.define($1::jsonb)", definition)
    # checkpoint first: rows written after it cost page-init records, not full-page images,
    # as in steady state where work is enqueued and processed within one checkpoint cycle
    await conn.execute("checkpoint")
    await conn.execute("select wf.enqueue($2, jsonb_build_object('n', n)) from generate_series(1, $1) n",
                       runs, workflow)
    await conn.close()

    async def loop(c: asyncpg.Connection) -> None:
        idle = 0
        while idle < 3:
            rows = await c.fetch("select run_id, step, attempt from wf.claim('noop', 1)")
            if not rows:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            r = rows[0]
            await c.fetchval("select wf.complete($1, $2, $3, $4)", r["run_id"], r["step"], r["attempt"], {"ok": True})

    result = await _measure(dsn, workers, loop, runs * STEPS)
    check = await asyncpg.connect(dsn)
    done = await check.fetchval("select count(*) from wf.runs where workflow = $1 and status = 'completed'", workflow)
    await check.close()
    if done != runs:
        raise SystemExit(f"bench-sql: only {done} of {runs} runs completed")
    return result


async def bench_raw(dsn: str, runs: int, workers: int, tag: str) -> Result:
    queue = f"bench_raw_{tag}"
    conn = await db.connect(dsn)
    await conn.execute("select pgmq.create($1)", queue)
    await conn.execute("checkpoint")
    await conn.execute("select pgmq.send($2, jsonb_build_object('chain', n, 'step', 0)) "
                       "from generate_series(1, $1) n", runs, queue)
    await conn.close()

    async def loop(c: asyncpg.Connection) -> None:
        idle = 0
        while idle < 3:
            rows = await c.fetch("select msg_id, message from pgmq.read($1, 30, 1)", queue)
            if not rows:
                idle += 1
                await asyncio.sleep(0.01)
                continue
            idle = 0
            msg = rows[0]
            step = msg["message"]["step"]
            async with c.transaction():
                await c.execute("select pgmq.archive($1, $2::bigint)", queue, msg["msg_id"])
                if step + 1 < STEPS:
                    await c.execute("select pgmq.send($1, $2::jsonb)", queue,
                                    {"chain": msg["message"]["chain"], "step": step + 1})

    return await _measure(dsn, workers, loop, runs * STEPS)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="alternate raw and wf this many times; report medians")
    args = parser.parse_args()
    await install(args.dsn, cron=False)

    raws: list[Result] = []
    sqls: list[Result] = []
    for i in range(args.rounds):
        raws.append(await bench_raw(args.dsn, args.runs, args.workers, str(i)))
        sqls.append(await bench_wf(args.dsn, args.runs, args.workers, str(i)))
        for name, r in (("raw pgmq", raws[-1]), ("wf sql", sqls[-1])):
            print(f"round {i + 1} {name:9} {r.steps} steps in {r.seconds:.2f}s = {r.rate:,.0f} steps/s, "
                  f"{r.commits / r.steps:.2f} commits/step, {r.wal_bytes / r.steps:,.0f} WAL bytes/step", flush=True)
    raw = sorted(raws, key=lambda r: r.rate)[len(raws) // 2]
    sql = sorted(sqls, key=lambda r: r.rate)[len(sqls) // 2]
    print(f"sql steps/s={sql.rate:.0f} raw={raw.rate:.0f} ratio={sql.rate / raw.rate:.2f} "
          f"commits/step={sql.commits / sql.steps:.2f} wal_bytes/step={sql.wal_bytes / sql.steps:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
