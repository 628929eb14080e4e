"""Speed benchmark of the web dashboard (issue 13; run by scripts/bench-dashboard).

1. The population, once: scripts/gen_runs.py's generate() fills the database (finished runs over
   30 days, open runs, one completed run of --big-steps steps) and a comment on the database records
   the sizes and the big run's id; a later run asking the same sizes reuses it (wf install runs
   each time, so the views and functions are the checkout's).
2. HTTP (default): `wf dashboard` (read-only) on a free port; one warm-up round, then R rounds, each
   requesting every page once (each round starting one page further along): per page p50/p95 of
   the whole request and of the database time its Server-Timing header reports, against the
   targets (a page's queries < 100 ms; the 200-step run's < 150 ms); the process's peak RSS
   (VmHWM, target < 150 MB). A page answering other than 200 is an error (exit 1); a missed
   target is not.
   --queries-only: the SQL of the views the dashboard reads (and those issue 14 names), timed
   directly in R rounds the same way, with EXPLAIN (ANALYZE, BUFFERS) of those over their target;
   and wf.tick() (target < 1 s), after ticking until its roll-up caught up, as pg_cron would have.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import math
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import aiohttp
import asyncpg
from gen_runs import TEXTS, generate
from wf import db
from wf import queries as wf_queries
from wf.install import install

REPO = Path(__file__).resolve().parents[1]
PAGE_MS = 100.0  # every page's queries
TICK_MS = 1000.0  # wf.tick() (issue 14)
BIG_RUN_MS = 150.0  # the run detail of the big run
RSS_MB = 150.0
WORKFLOW = "order-fulfilment"  # the workflow the filters and the workflow page use
FOUND = TEXTS[1].rsplit(" ", 1)[0]  # "gift wrap": a text some inputs hold
MISSING = "no input holds this text 7f3a9c"
SLOW_ROUNDS = 3  # rounds of a query whose first answer took over a second


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """VmHWM (peak resident set) and VmRSS of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmHWM", math.nan), values.get("VmRSS", math.nan)


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


# ---- the population -------------------------------------------------------------------------


def marker(finished: int, running: int, big_steps: int) -> str:
    return f"gen-runs finished={finished} running={running} big_steps={big_steps}"


async def population(dsn: str, finished: int, running: int, big_steps: int) -> uuid.UUID:
    """The big run's id; generates the population first unless the database already holds it."""
    name = urlsplit(dsn).path.lstrip("/")
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        comment = await admin.fetchval(
            "select shobj_description(oid, 'pg_database') from pg_database where datname = $1", name)
        wanted = marker(finished, running, big_steps)
        if comment and comment.startswith(wanted + " "):
            big = re.search(r"big_run=([0-9a-f-]{36})", comment)
            if big:
                print(f"bench-dashboard: reusing database {name} ({comment})", flush=True)
                await install(dsn, cron=False)
                return uuid.UUID(big.group(1))
        if comment is not None or await admin.fetchval("select 1 from pg_database where datname = $1", name):
            print(f"bench-dashboard: database {name} holds another population ({comment}); making it again",
                  flush=True)
            await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.execute(f'create database "{name}"')
        await install(dsn, cron=False)
        print(f"bench-dashboard: generating {finished:,} finished and {running:,} open runs into {name}", flush=True)
        summary = await generate(dsn, finished, running, big_steps)
        if summary.big_run_id is None:
            raise SystemExit("bench-dashboard: --big-steps 0 leaves no run to time the run detail with")
        cpu = "" if summary.server_cpu is None else f", PostgreSQL CPU {summary.server_cpu:,.0f} s"
        print(f"bench-dashboard: generated in {summary.seconds:,.0f} s{cpu} "
              + "(" + ", ".join(f"{k} {v:,.0f} s" for k, v in summary.phases.items()) + ")", flush=True)
        await admin.execute(f'comment on database "{name}" is '
                            f"'{wanted} big_run={summary.big_run_id} seconds={summary.seconds:.0f}'")
        return summary.big_run_id
    finally:
        await admin.close()


@dataclass
class Subjects:
    """What the pages and queries are asked about, read from the population."""

    big_run: uuid.UUID
    finished_run: uuid.UUID
    correlation_id: str
    since: Any  # 2 days ago
    until: Any  # 1 day ago
    page_two_before: Any  # the created_at the second page of the newest runs starts below


async def subjects(conn: asyncpg.Connection, big_run: uuid.UUID) -> Subjects:
    now = await conn.fetchval("select now()")
    finished = await conn.fetchval(
        "select id from wf.runs where workflow = $1 and status = 'completed' and created_at < now() - interval '1 day' "
        "order by created_at desc limit 1", WORKFLOW)
    correlation = await conn.fetchval(
        "select correlation_id from wf.runs where correlation_id is not null and created_at < now() - interval '1 day' "
        "order by created_at desc limit 1")
    before = await conn.fetchval("select created_at from wf.runs order by created_at desc offset 49 limit 1")
    if finished is None or correlation is None:
        raise SystemExit("bench-dashboard: the population has no completed run or no correlation id to ask about")
    return Subjects(big_run, finished, correlation, now - timedelta(days=2), now - timedelta(days=1), before)


# ---- measuring ------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    target: float
    total: list[float] = field(default_factory=list)  # ms
    db: list[float] = field(default_factory=list)  # ms (Server-Timing db, or the query itself)
    rows: int | None = None
    errors: list[str] = field(default_factory=list)

    def verdict(self) -> bool:
        return bool(self.db) and pct(self.db, 0.95) < self.target


def table(timings: list[Timing], db_label: str, with_total: bool) -> None:
    width = max(len(t.name) for t in timings)
    head = f"{'page' if with_total else 'query':<{width}}  "
    if with_total:
        head += f"{'http p50':>9} {'http p95':>9}  "
    head += f"{db_label + ' p50':>9} {db_label + ' p95':>9}  {'target':>7}  result"
    print(head)
    for t in timings:
        line = f"{t.name:<{width}}  "
        if with_total:
            line += f"{pct(t.total, 0.5):>9.1f} {pct(t.total, 0.95):>9.1f}  " if t.total else f"{'-':>9} {'-':>9}  "
        line += f"{pct(t.db, 0.5):>9.1f} {pct(t.db, 0.95):>9.1f}  " if t.db else f"{'-':>9} {'-':>9}  "
        result = "ERROR" if t.errors else ("ok" if t.verdict() else "MISSED")
        rows = f" ({t.rows} rows)" if t.rows is not None and not with_total else ""
        line += f"{'<' + format(t.target, '.0f'):>7}  {result}{rows}"
        print(line)


def worst(timings: list[Timing]) -> Timing:
    return max(timings, key=lambda t: (pct(t.db, 0.95) / t.target) if t.db else math.inf)


# ---- HTTP -----------------------------------------------------------------------------------

SERVER_TIMING = re.compile(r"db;dur=([0-9.]+)")
NEXT = re.compile(r'<a rel="next" href="([^"]+)"')


def pages(s: Subjects) -> list[tuple[str, str, float]]:
    def runs(**args: str) -> str:
        return "/runs?" + urlencode(args)

    return [
        ("/runs", "/runs", PAGE_MS),
        ("/runs?status=failed", runs(status="failed"), PAGE_MS),
        ("/runs?status=running", runs(status="running"), PAGE_MS),
        (f"/runs?workflow={WORKFLOW}", runs(workflow=WORKFLOW), PAGE_MS),
        ("/runs?correlation_id=…", runs(correlation_id=s.correlation_id), PAGE_MS),
        (f"/runs?q={FOUND}", runs(q=FOUND), PAGE_MS),
        ("/runs?q=<in no input>", runs(q=MISSING), PAGE_MS),
        ("/runs?from=2d ago&to=1d ago", runs(**{"from": s.since.isoformat(), "to": s.until.isoformat()}), PAGE_MS),
        ("/runs page 2 (rel=next)", "", PAGE_MS),  # filled in from the first page's link
        ("/runs/<finished run>", f"/runs/{s.finished_run}", PAGE_MS),
        ("/runs/<big run>", f"/runs/{s.big_run}", BIG_RUN_MS),
        ("/stages", "/stages", PAGE_MS),
        ("/dead-letters", "/dead-letters", PAGE_MS),
        ("/workflows", "/workflows", PAGE_MS),
        (f"/workflows/{WORKFLOW}", f"/workflows/{quote(WORKFLOW)}", PAGE_MS),
    ]


async def wait_up(session: aiohttp.ClientSession, base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench-dashboard: wf dashboard exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("bench-dashboard: wf dashboard did not answer /healthz within 60 s")


async def http_bench(dsn: str, s: Subjects, rounds: int) -> int:
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"wf-bench-dashboard-{port}.log"
    env = {k: v for k, v in os.environ.items() if k != "WF_DASHBOARD_TOKEN"}  # read-only
    with log.open("wb") as out:
        proc = subprocess.Popen([str(REPO / ".venv/bin/wf"), "dashboard", "--dsn", dsn, "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    listed = pages(s)
    timings = [Timing(name, target) for name, _, target in listed]
    conn = await db.connect(dsn)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_up(session, base, proc, log)
            async with session.get(f"{base}/runs") as response:
                text = await response.text()
            found = NEXT.search(text)
            if not found:
                raise SystemExit("bench-dashboard: /runs has no <a rel=\"next\"> link to a second page")
            urls = [url for _, url, _ in listed]
            urls[urls.index("")] = html.unescape(found.group(1))

            async def get(i: int, record: bool) -> None:
                started = time.perf_counter()
                try:
                    async with session.get(base + urls[i], allow_redirects=False) as response:
                        body = await response.read()
                        header = response.headers.get("Server-Timing", "")
                except aiohttp.ClientError as exc:
                    timings[i].errors.append(f"{type(exc).__name__}: {exc}")
                    return
                elapsed = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    timings[i].errors.append(f"HTTP {response.status}: {body[:300].decode(errors='replace')}")
                    return
                if record:
                    timings[i].total.append(elapsed)
                    m = SERVER_TIMING.search(header)
                    if m:
                        timings[i].db.append(float(m.group(1)))
                    else:
                        timings[i].errors.append(f"no Server-Timing db in {header!r}")

            await catch_up(conn)
            await freshen(conn)
            for i in range(len(urls)):  # warm-up: templates compiled, pool filled, caches read
                await get(i, record=False)
            for r in range(rounds):
                await freshen(conn)
                for k in range(len(urls)):
                    await get((r + k) % len(urls), record=True)
                print(f"bench-dashboard: round {r + 1}/{rounds}", file=sys.stderr, flush=True)
            peak, rss = peak_rss_mb(proc.pid)
    finally:
        await conn.close()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(f"pages of `wf dashboard` (read-only), {rounds} rounds after a warm-up; ms; db = Server-Timing db")
    table(timings, "db", with_total=True)
    errors = [(t.name, e) for t in timings for e in t.errors]
    for name, error in errors[:20]:
        print(f"error: {name}: {error}")
    w = worst(timings)
    missed = sum(not t.verdict() for t in timings)
    print(f"dashboard process: peak RSS (VmHWM) {peak:.0f} MB (target < {RSS_MB:.0f}), RSS at the end {rss:.0f} MB")
    print(f"bench-dashboard: pages={len(timings)} rounds={rounds} missed={missed} errors={len(errors)} "
          f"worst={w.name} db_p95_ms={pct(w.db, 0.95) if w.db else math.nan:.1f} "
          f"http_p95_ms={pct(w.total, 0.95) if w.total else math.nan:.1f} target_ms={w.target:.0f} "
          f"peak_rss_mb={peak:.0f}", flush=True)
    return 1 if errors else 0


# ---- queries only ---------------------------------------------------------------------------


def queries(s: Subjects) -> list[tuple[str, str, tuple[Any, ...], float]]:
    """(name, SQL, arguments, target ms): what the dashboard's pages read, and the views of issue 14."""
    ov = "select * from wf.runs_overview"
    return [
        ("runs_overview limit 50", f"{ov} limit 50", (), PAGE_MS),
        ("runs_overview status=failed limit 50", f"{ov} where status = $1 limit 50", ("failed",), PAGE_MS),
        ("runs_overview status=running limit 50", f"{ov} where status = $1 limit 50", ("running",), PAGE_MS),
        ("runs_overview workflow limit 50", f"{ov} where workflow = $1 limit 50", (WORKFLOW,), PAGE_MS),
        ("runs_overview correlation_id limit 50", f"{ov} where correlation_id = $1 limit 50",
         (s.correlation_id,), PAGE_MS),
        ("runs_overview 2d..1d ago limit 50", f"{ov} where created_at >= $1 and created_at < $2 limit 50",
         (s.since, s.until), PAGE_MS),
        ("runs_overview page 2 (created_at <) limit 50", f"{ov} where created_at < $1 limit 50",
         (s.page_two_before,), PAGE_MS),
        # the run list's counts per status, each capped (10,000+), as the dashboard and `wf runs` ask
        ("run counts per status (capped)", wf_queries.RUN_COUNTS, (None, None, None, None, 10_001), PAGE_MS),
        ("runs_overview one finished run", f"{ov} where run_id = $1", (s.finished_run,), PAGE_MS),
        ("step_timeline finished run", "select * from wf.step_timeline where run_id = $1 order by started_at",
         (s.finished_run,), PAGE_MS),
        ("run_history finished run", "select * from wf.run_history where run_id = $1 order by seq",
         (s.finished_run,), PAGE_MS),
        ("runs_overview big run", f"{ov} where run_id = $1", (s.big_run,), BIG_RUN_MS),
        ("step_timeline big run", "select * from wf.step_timeline where run_id = $1 order by started_at",
         (s.big_run,), BIG_RUN_MS),
        ("run_history big run", "select * from wf.run_history where run_id = $1 order by seq",
         (s.big_run,), BIG_RUN_MS),
        ("stage_health", "select * from wf.stage_health", (), PAGE_MS),
        ("dead_letters limit 50", "select * from wf.dead_letters limit 50", (), PAGE_MS),
        ("workflow_versions", "select * from wf.workflow_versions", (), PAGE_MS),
        ("workflow_versions one workflow", "select * from wf.workflow_versions where workflow = $1",
         (WORKFLOW,), PAGE_MS),
        # issue 14's list besides the above
        ("failures limit 50", "select * from wf.failures limit 50", (), PAGE_MS),
        ("stuck", "select * from wf.stuck", (), PAGE_MS),
        ("workflow_stats (the last day)", "select * from wf.workflow_stats", (), PAGE_MS),
        ("alerts", "select * from wf.alerts", (), PAGE_MS),
        ("wf.tick()", "select wf.tick()", (), TICK_MS),
    ]


async def catch_up(conn: asyncpg.Connection) -> None:
    """Ticks until the roll-ups (outcomes per stage and minute, ended runs per workflow and hour)
    have caught up (after an install or an idle day), as pg_cron's minute job would have done
    meanwhile."""
    for _ in range(40):
        result = await conn.fetchval("select wf.tick()")
        done = json.loads(result) if isinstance(result, str) else result
        print(f"bench-dashboard: tick {done}", file=sys.stderr, flush=True)
        if not done.get("rolled_up_minutes") and not done.get("rolled_up_run_minutes"):
            break


async def freshen(conn: asyncpg.Connection) -> None:
    """Moves the open runs' work to now, as it was when the generator left it: a kept population
    ages between runs (and its claimed calls' 135 s leases end during one), and then every open
    step is a lost call or stuck, which is not the "50k in flight" asked about. Every message in
    wf's queues and the queued or running steps they are for move forward by the time since the
    newest message was sent; then the queues are vacuumed, as pgmq's are in production. Not
    timed: called before the warm-up and before each round."""
    delta = await conn.fetchval("select now() - max(m.enqueued_at) from wf.queue_messages('infinity') m")
    if delta is None:
        return
    await conn.execute(
        "update wf.steps s set queued_at = s.queued_at + $1, started_at = s.started_at + $1, "
        "lease_until = s.lease_until + $1 from wf.queue_messages('infinity') m "
        "where s.run_id = m.run_id and s.name = m.step and s.msg_id = m.msg_id "
        "and s.status in ('queued', 'retrying', 'running')", delta)
    for queue in await conn.fetch("select q.queue from wf.stage_queues() q"):
        table = f'pgmq."q_{queue["queue"]}"'
        await conn.execute(f"update {table} set enqueued_at = enqueued_at + $1, vt = vt + $1", delta)
        await conn.execute(f"vacuum {table}")


async def queries_bench(dsn: str, s: Subjects, rounds: int, explain_lines: int) -> int:
    conn = await db.connect(dsn)
    listed = queries(s)
    timings = [Timing(name, target) for name, _, _, target in listed]
    try:
        await conn.execute("set statement_timeout = '300s'")
        await catch_up(conn)
        await freshen(conn)
        todo: list[int] = []
        for i, (_, sql, args, _) in enumerate(listed):  # warm-up, and how many rounds each can afford
            started = time.perf_counter()
            timings[i].rows = len(await conn.fetch(sql, *args))
            todo.append(rounds if time.perf_counter() - started < 1 else SLOW_ROUNDS)
        for r in range(rounds):
            await freshen(conn)
            for k in range(len(listed)):
                i = (r + k) % len(listed)
                if r >= todo[i]:
                    continue
                _, sql, args, _ = listed[i]
                started = time.perf_counter()
                await conn.fetch(sql, *args)
                timings[i].db.append((time.perf_counter() - started) * 1000)
            print(f"bench-dashboard: round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        print(f"the views the dashboard reads, queried directly; {rounds} rounds after a warm-up "
              f"({SLOW_ROUNDS} for a query over a second); ms")
        table(timings, "sql", with_total=False)
        for t, (name, sql, args, _) in zip(timings, listed, strict=True):
            if t.verdict():
                continue
            plan = await conn.fetch(f"explain (analyze, buffers) {sql}", *args)
            lines = [r[0] for r in plan]
            print(f"\n-- {name} (p50 {pct(t.db, 0.5):.0f} ms): {sql}")
            for line in lines[:explain_lines]:
                print(line)
            if len(lines) > explain_lines:
                print(f"... ({len(lines) - explain_lines} more lines)")
    finally:
        await conn.close()
    w = worst(timings)
    missed = sum(not t.verdict() for t in timings)
    print(f"\nbench-dashboard: queries={len(timings)} rounds={rounds} missed={missed} worst={w.name} "
          f"p95_ms={pct(w.db, 0.95):.1f} target_ms={w.target:.0f}", flush=True)
    return 0


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="scripts/bench-dashboard passes --dsn; its --keep keeps the server's "
                                            "data directory (and the population) for the next run")
    parser.add_argument("--dsn", required=True, help="the benchmark's database (made and filled if needed)")
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--running", type=int, default=50_000)
    parser.add_argument("--big-steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--queries-only", action="store_true",
                        help="time the views' SQL directly instead of the dashboard's pages")
    parser.add_argument("--explain-lines", type=int, default=60, help="plan lines shown per query over target")
    args = parser.parse_args()
    if not 1 <= args.big_steps <= 200:
        parser.error("--big-steps must be between 1 and 200")
    big = await population(args.dsn, args.finished, args.running, args.big_steps)
    conn = await db.connect(args.dsn)
    try:
        s = await subjects(conn, big)
    finally:
        await conn.close()
    if args.queries_only:
        return await queries_bench(args.dsn, s, args.rounds, args.explain_lines)
    return await http_bench(args.dsn, s, args.rounds)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
