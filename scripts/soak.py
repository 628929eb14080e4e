"""Soak benchmark of wf's bounded storage (issue 14; run by scripts/soak).

Runs `--runs` runs of a 3-step workflow through wf's SQL API (no HTTP, as scripts/bench_sql.py):
a producer keeps about `--backlog` runs open (wf.enqueue in chunks), `--workers` connections
claim (wf.claim, `--batch` at a time) and answer (wf.complete_batch; one run in `--fail-every`
dies at its middle step through wf.fail, not retryable, so the run fails and its step goes to
wf_dlq), and a side task calls `select wf.tick()` every `--tick-seconds` as pg_cron would, with
retention_days shortened to `--retention-minutes`. Autovacuum runs with PostgreSQL's defaults,
as on a real install: the space the retention frees is reused only once vacuum has been by.

The runs are counted off in `--segments` segments; after each one a line: elapsed time, runs
finished, steps/s of the segment, the total size (pg_total_relation_size) of every table wf writes
(wf.runs, steps, events, signals, stage_minutes, stage_samples; pgmq's q_wf_* queues, their
a_wf_* archives, q_wf_dlq; and the total of schema wf with those), the rows of runs, events and
archived messages, the segment's ticks (the slowest) and what they deleted. At the end, wf.tick()'s
time by function (track_functions on the ticking session), autovacuum's count and the dead rows per
table, and the verdict:

- sizes: each table's largest size over the last third of the segments against its size at the
  end of the second retention window (the first segment ending `2 x (retention + tick)` after
  the start: the tables hold one window of runs, and the space the first window's deletes freed
  is in use again, once vacuum has been by), within `--tolerance`; tables under 1 MB there are
  shown but not judged (a page more is +10%). wf.stage_minutes and wf.stage_samples are kept a
  day whatever the retention (bounded by the clock, not by the load): shown, not judged;
- speed: steps/s of the last fifth of the segments against the fifth that follows the end of
  the first retention window, when retention deletes as much as the runs make: the ratio, and
  whether the end is within 10% of the start (or faster). The first segments, before anything
  was deleted (and before the first checkpoint), are faster than any steady state and are shown
  beside it, not judged.

The ticks get `--retention-budget-ms` (wf.settings' retention_budget_ms, default here 1000): at
a thousand steps a second and a tick every 5 s, the default 400 ms deletes the runs but not all
of their archived messages.

Final line: soak: runs=N segments=S steps_per_s_start=... end=... ratio=... within_10pct=yes|no
sizes_flat=yes|no|n/a max_growth=... deleted_runs=... deleted_archived=...  A miss is reported,
not an error (exit 0); an error exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from wf import db
from wf.install import install

WORKFLOW = "soak"
STAGE = "soak"  # the function's name: its stage and queue (pgmq.q_wf_soak)
STEPS = 3
FAIL_STEP = "s1"  # the step a failing run dies at (after s0 succeeded: a run with history)
ENQUEUE_CHUNK = 200  # runs per wf.enqueue statement
STALL_SECONDS = 120  # no step answered for this long while runs are open: an error
SMALL = 1 << 20  # tables below this at the end of the first window are shown, not judged
JUDGED = ("runs", "steps", "events", "signals", "queues", "archives", "dlq", "total")
KEPT_A_DAY = ("stage_minutes", "stage_samples")
ROWS = {"runs": "runs", "events": "events", "archives": "archived"}  # tables whose rows are counted
# deadlock victims and serialization failures are rolled back whole: the statement is sent again
RETRIED = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)

SIZES = """
select pg_total_relation_size('wf.runs') as runs,
       pg_total_relation_size('wf.steps') as steps,
       pg_total_relation_size('wf.events') as events,
       pg_total_relation_size('wf.signals') as signals,
       pg_total_relation_size('wf.stage_minutes') as stage_minutes,
       pg_total_relation_size('wf.stage_samples') as stage_samples,
       (select coalesce(sum(pg_total_relation_size(c.oid)), 0) from pg_class c
        where c.relnamespace = 'pgmq'::regnamespace and c.relkind in ('r', 'p')
          and c.relname like 'q\\_wf\\_%' and c.relname <> 'q_wf_dlq')::bigint as queues,
       (select coalesce(sum(pg_total_relation_size(c.oid)), 0) from pg_class c
        where c.relnamespace = 'pgmq'::regnamespace and c.relkind in ('r', 'p')
          and c.relname like 'a\\_wf\\_%')::bigint as archives,
       pg_total_relation_size('pgmq.q_wf_dlq') as dlq,
       (select coalesce(sum(pg_total_relation_size(c.oid)), 0) from pg_class c
        where c.relkind in ('r', 'p') and (c.relnamespace = 'wf'::regnamespace
          or (c.relnamespace = 'pgmq'::regnamespace and c.relname ~ '^[aq]_wf_')))::bigint as total
"""
ARCHIVES = ("select c.relname from pg_class c where c.relnamespace = 'pgmq'::regnamespace "
            "and c.relkind in ('r', 'p') and c.relname like 'a\\_wf\\_%' order by 1")


def definition() -> dict[str, Any]:
    return {"name": WORKFLOW, "description": "scripts/soak: three no-op steps in a chain",
            "steps": [{"name": f"s{i}", "function": STAGE, "action": "go", "payload_template": {"i": i}}
                      for i in range(STEPS)]}


def dies(run_id: uuid.UUID, fail_every: int) -> bool:
    """Whether this run dies at FAIL_STEP (one in fail_every, by its id's random bits)."""
    return fail_every > 0 and run_id.int % fail_every == 0


def say(line: str) -> None:
    print(line, flush=True)


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}GB"


@dataclass
class Segment:
    index: int
    elapsed: float  # seconds since the first enqueue, at the segment's end
    runs_done: int  # runs final by then
    steps: int  # steps answered in the segment
    seconds: float
    sizes: dict[str, int]
    rows: dict[str, int]
    deleted: dict[str, int]  # what the ticks of the segment deleted
    ticks: int
    tick_max_ms: float = 0.0  # the segment's slowest wf.tick()

    @property
    def rate(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Verdict:
    steps_start: float
    steps_end: float
    steps_ratio: float
    steps_within: bool
    sizes_flat: bool | None  # None: the soak ended before the last third was past the first window
    max_growth: float | None
    baseline: int | None  # index of the segment at the end of the second retention window
    growth: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # table -> (at window, max last, ratio)
    note: str = ""
    steps_before: float = 0.0  # steps/s of the first segments, before retention deleted anything
    speed_from: int | None = None  # index of the first segment of the speed's start


@dataclass
class Report:
    runs: int
    segments: list[Segment]
    verdict: Verdict
    deleted: dict[str, int]
    ticks: int
    tick_max_ms: float
    retried: int
    seconds: float
    tick_parts: list[str] = field(default_factory=list)  # wf.tick()'s time by function, one line each
    vacuum: list[str] = field(default_factory=list)  # autovacuum's work on the tables, one line each


def judge(segments: Sequence[Segment], window_seconds: float, tolerance: float) -> Verdict:
    """The verdict over the segments (see the module's docstring)."""
    n = len(segments)
    w = max(1, n // 5)
    # the first segments, before retention deleted anything (reported beside the verdict)
    warm = segments[1:1 + w] if n >= 3 else segments[:1]
    # steady state: from the segment after the first window ended, deleting as much as is made
    deleting = next((s.index for s in segments if s.elapsed >= window_seconds), None)
    first = segments[deleting + 1:deleting + 1 + w] if deleting is not None else []
    last = segments[-w:]
    note = ""
    if not first or first[-1].index >= last[0].index:
        first = warm
        note = "the soak ended too soon after the first retention window: speed against the first segments"
    start = statistics.fmean(s.rate for s in first) if first else 0.0
    end = statistics.fmean(s.rate for s in last) if last else 0.0
    ratio = end / start if start else 0.0
    verdict = Verdict(start, end, ratio, ratio >= 0.9, None, None, None, note=note)
    verdict.steps_before = statistics.fmean(s.rate for s in warm) if warm else 0.0
    verdict.speed_from = first[0].index if first else None
    # sizes: from the end of the second window on, when the space the first deletes freed is in
    # use again (vacuum must pass first); the largest of the last third against it
    baseline = next((s.index for s in segments if s.elapsed >= 2 * window_seconds), None)
    tail = segments[n - max(1, n // 3):]
    if baseline is None or not tail or tail[0].index <= baseline:
        verdict.note = (f"the last third of the segments is not past the second retention window "
                        f"({2 * window_seconds:.0f} s): more runs or a shorter retention")
        return verdict
    verdict.baseline = baseline
    base = segments[baseline]
    flat = True
    worst = 0.0
    for table in (*JUDGED, *KEPT_A_DAY):
        at, peak = base.sizes[table], max(s.sizes[table] for s in tail)
        growth = peak / at if at else float("inf")
        verdict.growth[table] = (at, peak, growth)
        if table in JUDGED and at >= SMALL:
            worst = max(worst, growth)
            flat = flat and growth <= 1 + tolerance
    verdict.sizes_flat = flat
    verdict.max_growth = worst
    return verdict


class Soak:
    """One soak: its counters, shared by the producer, the workers, the ticker and the monitor."""

    def __init__(self, dsn: str, runs: int, *, workers: int, batch: int, backlog: int, fail_every: int,
                 tick_seconds: float, out: Callable[[str], None]) -> None:
        self.dsn = dsn
        self.runs = runs
        self.workers = workers
        self.batch = batch
        self.backlog = backlog
        self.fail_every = fail_every
        self.tick_seconds = tick_seconds
        self.out = out
        self.enqueued = 0
        self.finished = 0  # runs answered to their end (last step completed, or dead)
        self.steps = 0  # answers given
        self.retried = 0
        self.last_progress = time.monotonic()
        self.deleted: dict[str, int] = {"deleted_runs": 0, "deleted_archived": 0, "deleted_dead_letters": 0}
        self.ticks = 0
        self.tick_max_ms = 0.0
        self.segment_tick_max_ms = 0.0
        self.done = asyncio.Event()
        self.progress = asyncio.Event()

    async def call(self, conn: asyncpg.Connection, method: str, query: str, *args: Any) -> Any:
        for attempt in range(10):
            try:
                return await getattr(conn, method)(query, *args)
            except RETRIED:
                if attempt == 9:
                    raise
                self.retried += 1
                await asyncio.sleep(0.02 * (attempt + 1))
        return None

    async def produce(self, conn: asyncpg.Connection) -> None:
        while self.enqueued < self.runs:
            if self.enqueued - self.finished >= self.backlog:
                self.progress.clear()
                await self.progress.wait()
                continue
            n = min(ENQUEUE_CHUNK, self.runs - self.enqueued)
            await self.call(conn, "execute", "select count(wf.enqueue($1, jsonb_build_object('n', n))) "
                            "from generate_series($2::int, $3::int) n", WORKFLOW, self.enqueued + 1, self.enqueued + n)
            self.enqueued += n

    async def work(self, conn: asyncpg.Connection) -> None:
        last = f"s{STEPS - 1}"
        while not self.done.is_set():
            rows = await self.call(conn, "fetch", "select run_id, step, attempt from wf.claim($1, $2)",
                                   STAGE, self.batch)
            if not rows:
                await asyncio.sleep(0.005)
                continue
            ok: tuple[list[Any], ...] = ([], [], [], [])
            dead: tuple[list[Any], ...] = ([], [], [])
            for r in sorted(rows, key=lambda r: r["run_id"]):  # in run id order, as wf locks runs
                target = dead if r["step"] == FAIL_STEP and dies(r["run_id"], self.fail_every) else ok
                for values, value in zip(target, (r["run_id"], r["step"], r["attempt"], {"ok": True}), strict=False):
                    values.append(value)
            if ok[0]:
                await self.call(conn, "fetchval",
                                "select wf.complete_batch($1::uuid[], $2::text[], $3::int[], $4::jsonb[])", *ok)
            if dead[0]:
                await self.call(conn, "execute",
                                "select count(wf.fail(u.run_id, u.step, u.attempt, 'HTTP 422: soak says no', false, "
                                "422)) from unnest($1::uuid[], $2::text[], $3::int[]) as u(run_id, step, attempt)",
                                *dead)
            self.steps += len(rows)
            self.finished += sum(1 for s in ok[1] if s == last) + len(dead[0])
            self.last_progress = time.monotonic()
            self.progress.set()

    async def tick(self, conn: asyncpg.Connection) -> None:
        while not self.done.is_set():
            started = time.monotonic()
            result = await self.call(conn, "fetchval", "select wf.tick()")
            ms = (time.monotonic() - started) * 1000
            self.tick_max_ms = max(self.tick_max_ms, ms)
            self.segment_tick_max_ms = max(self.segment_tick_max_ms, ms)
            self.ticks += 1
            for key in self.deleted:
                self.deleted[key] += int(result.get(key, 0))
            wait = max(0.0, self.tick_seconds - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), timeout=wait)


async def measure(conn: asyncpg.Connection) -> tuple[dict[str, int], dict[str, int]]:
    sizes = dict(await conn.fetchrow(SIZES))
    rows = {"runs": await conn.fetchval("select count(*) from wf.runs"),
            "events": await conn.fetchval("select count(*) from wf.events"),
            "archived": 0}
    for name in await conn.fetch(ARCHIVES):
        rows["archived"] += await conn.fetchval(f'select count(*) from pgmq."{name["relname"]}"')
    return {k: int(v) for k, v in sizes.items()}, rows


def retention_setting(days: float) -> str:
    """days as wf.settings' retention_days takes it (no exponent)."""
    return f"{days:.10f}".rstrip("0").rstrip(".")


async def set_retention(conn: asyncpg.Connection, days: float) -> str:
    """retention_days = days; wf's settings trigger refuses less than its minimum (22023): then it
    is set with the trigger disabled for the update. Returns how it was set."""
    value = retention_setting(days)
    try:
        await conn.execute("update wf.settings set value = $1::text::jsonb where key = 'retention_days'", value)
        return "set"
    except asyncpg.exceptions.InvalidParameterValueError as e:
        async with conn.transaction():
            await conn.execute("alter table wf.settings disable trigger user")
            await conn.execute("update wf.settings set value = $1::text::jsonb where key = 'retention_days'", value)
            await conn.execute("alter table wf.settings enable trigger user")
        return f"set with wf.settings' triggers disabled (refused: {e})"


async def tick_parts(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "select funcname, calls, total_time, self_time from pg_stat_user_functions "
        "where schemaname = 'wf' and funcname in ('tick', 'apply_retention', 'roll_up_stage_minutes', "
        "'raise_alerts', 'queue_messages') order by total_time desc")
    return [f"  wf.{r['funcname']:22} {r['calls']:6} calls, {r['total_time'] / max(r['calls'], 1):8.1f} ms per call"
            for r in rows]


async def vacuum(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "select schemaname || '.' || relname as name, autovacuum_count, n_live_tup, n_dead_tup, "
        "last_autovacuum is not null as vacuumed from pg_stat_user_tables "
        "where (schemaname = 'wf' and relname in ('runs', 'steps', 'events', 'signals')) "
        "or (schemaname = 'pgmq' and relname ~ '^[aq]_wf_') order by 1")
    return [f"  {r['name']:16} autovacuumed {r['autovacuum_count']} times, {r['n_live_tup']} live rows, "
            f"{r['n_dead_tup']} dead" for r in rows]


def segment_line(s: Segment, total_segments: int, runs: int) -> str:
    z, r, d = s.sizes, s.rows, s.deleted
    return (f"segment {s.index + 1}/{total_segments} t={s.elapsed:.0f}s runs={s.runs_done}/{runs} "
            f"steps/s={s.rate:.0f} | runs {human(z['runs'])} steps {human(z['steps'])} "
            f"events {human(z['events'])} signals {human(z['signals'])} stage_minutes {human(z['stage_minutes'])} "
            f"stage_samples {human(z['stage_samples'])} q_wf_* {human(z['queues'])} a_wf_* {human(z['archives'])} "
            f"q_wf_dlq {human(z['dlq'])} total {human(z['total'])} | rows runs={r['runs']} events={r['events']} "
            f"archived={r['archived']} | ticks={s.ticks} (slowest {s.tick_max_ms:.0f} ms) "
            f"deleted runs={d['deleted_runs']} archived={d['deleted_archived']} "
            f"dead_letters={d['deleted_dead_letters']}")


async def soak(dsn: str, runs: int, *, retention_days: float, segments: int = 20, tick_seconds: float = 5.0,
               workers: int = 4, batch: int = 16, backlog: int = 1000, fail_every: int = 50,
               tolerance: float = 0.25, out: Callable[[str], None] = say) -> Report:
    """The soak against dsn (wf installed; its retention_days is changed): see the module's docstring."""
    if runs < 1 or segments < 1:
        raise ValueError("runs and segments must be at least 1")
    segments = min(segments, runs)
    run = Soak(dsn, runs, workers=workers, batch=batch, backlog=backlog, fail_every=fail_every,
               tick_seconds=tick_seconds, out=out)
    admin = await db.connect(dsn)
    conns: list[asyncpg.Connection] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        how = await set_retention(admin, retention_days)
        budget = await admin.fetchval("select value #>> '{}' from wf.settings where key = 'retention_budget_ms'")
        await admin.fetchval("select wf.define($1::jsonb)", definition())
        out(f"soak: {runs} runs of {STEPS} steps in {segments} segments, "
            f"retention_days={retention_setting(retention_days)} "
            f"({retention_days * 1440:.2f} min; {how}), wf.tick() every {tick_seconds:g} s (retention budget "
            f"{budget} ms), "
            f"{workers} workers "
            f"claiming {batch}, backlog {backlog}, 1 in {fail_every} runs dead; autovacuum on (defaults)")
        conns = [await db.connect(dsn) for _ in range(workers + 2)]
        producer, ticker, *workers_conns = conns
        # wf.tick()'s time by function (pg_stat_user_functions), for this session's calls only
        await ticker.execute("select pg_stat_reset_single_function_counters(p.oid) from pg_proc p "
                             "where p.pronamespace = 'wf'::regnamespace")
        await ticker.execute("set track_functions = 'pl'")
        started = time.monotonic()
        run.last_progress = started
        tasks = [asyncio.create_task(run.produce(producer)), asyncio.create_task(run.tick(ticker)),
                 *(asyncio.create_task(run.work(c)) for c in workers_conns)]
        done: list[Segment] = []
        mark_t, mark_steps, mark_deleted, mark_ticks = started, 0, dict(run.deleted), 0
        for i in range(segments):
            target = runs * (i + 1) // segments
            while run.finished < target:
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                if time.monotonic() - run.last_progress > STALL_SECONDS:
                    raise SystemExit(f"soak: no step answered for {STALL_SECONDS} s with "
                                     f"{run.enqueued - run.finished} runs open")
                await asyncio.sleep(0.05)
            now, steps, deleted, ticks = time.monotonic(), run.steps, dict(run.deleted), run.ticks
            sizes, rows = await measure(admin)
            seg = Segment(i, now - started, run.finished, steps - mark_steps, now - mark_t, sizes, rows,
                          {k: deleted[k] - mark_deleted[k] for k in deleted}, ticks - mark_ticks,
                          run.segment_tick_max_ms)
            run.segment_tick_max_ms = 0.0
            done.append(seg)
            out(segment_line(seg, segments, runs))
            mark_t, mark_steps, mark_deleted, mark_ticks = now, steps, deleted, ticks
        # every run answered to its end by the count here; the database says so too (the workers go on
        # meanwhile: an answer that came too late, say, leaves its step to a second attempt)
        deadline = time.monotonic() + STALL_SECONDS
        while still := await admin.fetchval("select count(*) from wf.runs where workflow = $1 and status "
                                            "not in ('completed', 'failed', 'cancelled')", WORKFLOW):
            if time.monotonic() > deadline:
                raise SystemExit(f"soak: {still} runs are not final {STALL_SECONDS} s after every run was answered")
            await asyncio.sleep(0.1)
        run.done.set()
        run.progress.set()
        await asyncio.gather(*tasks)
        seconds = time.monotonic() - started
        await ticker.close()  # its function statistics are sent when it ends
        await asyncio.sleep(0.5)
        window = retention_days * 86400 + tick_seconds
        verdict = judge(done, window, tolerance)
        return Report(runs, done, verdict, dict(run.deleted), run.ticks, run.tick_max_ms, run.retried, seconds,
                      await tick_parts(admin), await vacuum(admin))
    finally:
        run.done.set()
        run.progress.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in [*conns, admin]:
            if not c.is_closed():
                await c.close()


def summary(report: Report, tolerance: float) -> list[str]:
    v = report.verdict
    lines = []
    if v.baseline is not None:
        base = report.segments[v.baseline]
        lines.append(f"sizes: the end of the second retention window is segment {v.baseline + 1} "
                     f"(t={base.elapsed:.0f}s); the largest of the last {max(1, len(report.segments) // 3)} "
                     f"segments against it (tolerance +{tolerance:.0%}; under {human(SMALL)} not judged):")
        tail = report.segments[len(report.segments) - max(1, len(report.segments) // 3):]
        for table, (at, peak, growth) in v.growth.items():
            judged = "kept a day, not judged" if table in KEPT_A_DAY else (
                "not judged (small)" if at < SMALL else ("ok" if growth <= 1 + tolerance else "GREW"))
            counted = ROWS.get(table)
            rows = "" if counted is None or not base.rows[counted] else (
                f"; rows {base.rows[counted]} -> {max(s.rows[counted] for s in tail)} "
                f"x{max(s.rows[counted] for s in tail) / base.rows[counted]:.2f}")
            lines.append(f"  {table:14} {human(at):>9} -> {human(peak):>9}  x{growth:.2f}  {judged}{rows}")
    else:
        lines.append(f"sizes: n/a: {v.note}")
    since = ("segments after the first" if v.speed_from is None or v.speed_from <= 1
             else f"from segment {v.speed_from + 1}, once retention deleted as much as was made")
    lines.append(f"steps/s: start {v.steps_start:.0f} ({since}), end {v.steps_end:.0f}, "
                 f"ratio {v.steps_ratio:.2f}: " + ("within 10% (or faster)" if v.steps_within
                                                    else "MORE than 10% slower at the end")
                 + (f"; before retention began {v.steps_before:.0f} (end/that {v.steps_end / v.steps_before:.2f})"
                    if v.steps_before else ""))
    if v.note and v.baseline is not None:
        lines.append(f"note: {v.note}")
    d = report.deleted
    lines.append(f"ticks: {report.ticks} (slowest {report.tick_max_ms:.0f} ms), deleted runs={d['deleted_runs']} "
                 f"archived={d['deleted_archived']} dead_letters={d['deleted_dead_letters']}; "
                 f"statements retried after a deadlock: {report.retried}; {report.seconds:.0f} s in all")
    if report.tick_parts:
        lines += ["wf.tick() by function (track_functions):", *report.tick_parts]
    if report.vacuum:
        lines += ["autovacuum at the end:", *report.vacuum]
    flat = "n/a" if v.sizes_flat is None else ("yes" if v.sizes_flat else "no")
    max_growth = "n/a" if v.max_growth is None else f"{v.max_growth:.2f}"
    lines.append(f"soak: runs={report.runs} segments={len(report.segments)} steps_per_s_start={v.steps_start:.0f} "
                 f"end={v.steps_end:.0f} ratio={v.steps_ratio:.2f} within_10pct={'yes' if v.steps_within else 'no'} "
                 f"sizes_flat={flat} max_growth={max_growth} "
                 f"deleted_runs={d['deleted_runs']} deleted_archived={d['deleted_archived']}")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True, help="an empty database: wf is installed into it")
    parser.add_argument("--runs", type=int, default=200_000)
    parser.add_argument("--segments", type=int, default=20, help="report lines (runs / segments runs each)")
    parser.add_argument("--retention-minutes", type=float, default=2.0,
                        help="retention_days, in minutes (wf's settings take 0.144 minutes and up; below, "
                             "the setting is written with its trigger disabled)")
    parser.add_argument("--tick-seconds", type=float, default=5.0, help="select wf.tick() every this many seconds")
    parser.add_argument("--retention-budget-ms", type=int, default=1000,
                        help="wf.settings' retention_budget_ms: what each tick may spend deleting")
    parser.add_argument("--workers", type=int, default=4, help="connections claiming and answering")
    parser.add_argument("--batch", type=int, default=16, help="steps per wf.claim")
    parser.add_argument("--backlog", type=int, default=1000, help="runs kept open (enqueued, not final)")
    parser.add_argument("--fail-every", type=int, default=50, help="one run in this many dies (0: none)")
    parser.add_argument("--tolerance", type=float, default=0.25, help="growth allowed after the second window")
    args = parser.parse_args()
    if args.runs < 1 or args.segments < 1 or args.retention_minutes <= 0 or args.tick_seconds <= 0:
        parser.error("--runs, --segments, --retention-minutes and --tick-seconds must be positive")
    await install(args.dsn, cron=False)
    conn = await db.connect(args.dsn)
    try:
        await conn.execute("update wf.settings set value = $1::text::jsonb where key = 'retention_budget_ms'",
                           str(args.retention_budget_ms))
    finally:
        await conn.close()
    report = await soak(args.dsn, args.runs, retention_days=args.retention_minutes / 1440,
                        segments=args.segments, tick_seconds=args.tick_seconds, workers=args.workers,
                        batch=args.batch, backlog=args.backlog, fail_every=args.fail_every,
                        tolerance=args.tolerance)
    for line in summary(report, args.tolerance):
        say(line)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
