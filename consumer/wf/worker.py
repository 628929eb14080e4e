"""The consumer loop: claim → render → call → report. SQL decides everything else.

One asyncpg pool for claims and reports, one LISTEN connection on channel `wf`
(a poll every `poll_interval` covers delayed messages, expired leases and missed
notifications). Side tasks (listener, stage refresh with queue gauges, tick, /metrics) are
supervised: they log and restart, they never take the loop down.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from wf import db
from wf.calls import Call, Caller, Outcome
from wf.logs import log
from wf.metrics import HealthServer, Metrics
from wf.render import RenderError, build_context, render_payload, render_when
from wf.reports import CompleteBatcher

# SQLSTATE classes of answers that retrying cannot fix: bad input, unknown names, limits, bugs
_PERMANENT_SQLSTATE = ("22", "23", "42", "54", "P0")
_EXTEND_MARGIN = 10.0


@dataclass
class WorkerConfig:
    dsn: str
    functions_url: str
    token: str | None = None
    signing_secret: str | None = None
    concurrency: int = 16
    stages: tuple[str, ...] = ()
    once: bool = False
    grace: float = 30.0
    metrics_port: int | None = None
    poll_interval: float = 1.0
    batch_size: int = 32
    max_response_bytes: int = 1_048_576
    stop_requested: Callable[[], bool] | None = None  # a signal that came before the loop's handlers


@dataclass
class Stage:
    name: str
    queue: str
    max_concurrency: int | None
    in_flight: int = 0


@dataclass
class _Skip:
    reason: str


def _storable(text: str) -> str:
    """PostgreSQL text cannot hold U+0000, and an error text is quoted from whatever the function sent."""
    return text.replace("\x00", "\ufffd")


@dataclass
class Worker:
    config: WorkerConfig
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._stages_changed = asyncio.Event()
        self._stages: dict[str, Stage] = {}
        self._by_queue: dict[str, str] = {}
        # queues whose NOTIFY is not ours to serve: the DLQ and the stages --stages leaves out
        self._ignored_queues: set[str] = {"wf_dlq"}
        self._ready: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._side: list[asyncio.Task[None]] = []
        self._last_db_contact = time.monotonic()
        self._pool: asyncpg.Pool | None = None
        self._caller: Caller | None = None
        self._completes: CompleteBatcher | None = None
        self._finished = 0  # steps done (reported) so far
        self._leases: dict[tuple[Any, str, int], datetime] = {}  # until when each claimed step's message is ours

    # ---- lifecycle -------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; in-flight calls finish within the grace period."""
        if not self._stopping.is_set():
            log("worker_stopping", in_flight=len(self._tasks), grace_seconds=self.config.grace)
        self._stopping.set()
        self._wake.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stop)
        if self.config.stop_requested is not None and self.config.stop_requested():
            self.stop()
        cfg = self.config
        self._pool = await self._connect_pool()
        if self._pool is None:
            return 0
        health = HealthServer(self.metrics, lambda: self._last_db_contact)
        self._completes = CompleteBatcher(self._pool)
        try:
            async with Caller(cfg.functions_url, cfg.token, cfg.signing_secret, max_connections=cfg.concurrency,
                              max_response_bytes=cfg.max_response_bytes) as caller:
                self._caller = caller
                await self._refresh_stages()
                if cfg.metrics_port is not None:
                    await health.start(cfg.metrics_port)
                if not cfg.once:
                    self._supervise("listener", self._listen)
                    self._supervise("stages", self._refresh_stages_forever)
                    if not await self._has_cron_tick():
                        self._supervise("tick", self._tick_forever)
                log("worker_started", stages=sorted(self._stages), concurrency=cfg.concurrency, once=cfg.once)
                unknown = sorted(set(cfg.stages) - set(self._stages))
                if unknown:
                    log("unknown_stages", level="warning", stages=unknown,
                        note="no workflow calls these functions yet; they are served once one does")
                await self._dispatch()
                await self._drain()
        finally:
            for task in self._side:
                task.cancel()
            await asyncio.gather(*self._side, return_exceptions=True)
            await self._completes.close()
            await health.stop()
            await self._pool.close()
        log("worker_stopped")
        return 0

    async def _connect_pool(self) -> asyncpg.Pool | None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                size = max(2, min(self.config.concurrency, 20))
                return await db.create_pool(self.config.dsn, min_size=1, max_size=size)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if self.config.once:
                    raise  # cron-style: fail now (exit 1) rather than pile up behind an outage
                log("database_unreachable", level="warning", error=str(exc), retry_in=delay)
                await self._sleep(delay)
                delay = min(delay * 2, 10)
        return None

    def _supervise(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        async def supervised() -> None:
            delay = 0.5
            while not self._stopping.is_set():
                try:
                    await body()
                    delay = 0.5
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log("side_task_failed", level="warning", task=name, error=f"{type(exc).__name__}: {exc}",
                        retry_in=delay)
                    await self._sleep(delay)
                    delay = min(delay * 2, 10)

        self._side.append(asyncio.create_task(supervised(), name=f"wf-{name}"))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self.config.grace)
        for task in pending:
            task.cancel()
        if pending:
            log("grace_expired", level="warning", cancelled=len(pending),
                note="their messages come back after the visibility timeout")
            await asyncio.gather(*pending, return_exceptions=True)

    # ---- stages and wake-ups --------------------------------------------

    async def _refresh_stages(self) -> None:
        """The stages, their per-stage limits and queue depths (through a function a wf_worker login may call)."""
        assert self._pool is not None
        rows = await self._pool.fetch("select name, queue, max_concurrency, queue_length from wf.worker_stages()")
        self._last_db_contact = time.monotonic()
        wanted = set(self.config.stages)
        for row in rows:
            if wanted and row["name"] not in wanted:
                self._ignored_queues.add(row["queue"])
                continue
            self.metrics.queue_depth.labels(row["name"]).set(row["queue_length"])
            stage = self._stages.get(row["name"])
            if stage is None:
                self._stages[row["name"]] = Stage(row["name"], row["queue"], row["max_concurrency"])
                self._ready.add(row["name"])
                self._wake.set()
            else:
                stage.max_concurrency = row["max_concurrency"]
            self._by_queue[row["queue"]] = row["name"]

    async def _refresh_stages_forever(self) -> None:
        """Every 10 s, or at once when a message arrives on a queue we do not know (a new workflow)."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stages_changed.wait(), 10)
            self._stages_changed.clear()
            await self._refresh_stages()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, queue: str) -> None:
        stage = self._by_queue.get(queue)
        if stage is not None:
            self._ready.add(stage)
            self._wake.set()
        elif queue not in self._ignored_queues:
            self._stages_changed.set()

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.config.dsn)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener("wf", self._on_notify)
            self._ready.update(self._stages)  # anything sent while we were not listening
            self._wake.set()
            while not self._stopping.is_set() and not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), 15)
                if not lost.is_set():
                    await conn.execute("select 1")  # a dead socket shows itself here
            if lost.is_set():
                raise ConnectionError("LISTEN connection lost")
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def _has_cron_tick(self) -> bool:
        assert self._pool is not None
        return bool(await self._pool.fetchval("select wf.tick_scheduled()"))

    async def _tick_forever(self) -> None:
        """Without pg_cron the workers run the minute job themselves (it is safe to run twice)."""
        assert self._pool is not None
        while not self._stopping.is_set():
            result = await self._pool.fetchval("select wf.tick()")
            self._last_db_contact = time.monotonic()
            if any(result.values()):
                log("tick", **result)
            await self._sleep(60)

    # ---- dispatch -----------------------------------------------------------

    def _free(self, stage: Stage) -> int:
        free = self.config.concurrency - len(self._tasks)
        if stage.max_concurrency is not None:
            free = min(free, stage.max_concurrency - stage.in_flight)
        return max(0, min(free, self.config.batch_size))

    async def _dispatch(self) -> None:
        next_poll = 0.0
        failures = 0
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_poll or self.config.once:
                self._ready.update(self._stages)
                next_poll = now + self.config.poll_interval
            claimed = 0
            finished_before = self._finished
            try:
                for stage in list(self._stages.values()):
                    if stage.name in self._ready and not self._stopping.is_set():
                        claimed += await self._claim(stage)
                failures = 0
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), 10)
                log("claim_failed", level="warning", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
                await self._sleep(delay)
                continue
            if self.config.once and claimed == 0:
                # a step that finished during this round may have queued one in a stage already looked at
                if not self._tasks:
                    if self._finished == finished_before:
                        return
                    continue
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            if claimed and any(s.name in self._ready and self._free(s) for s in self._stages.values()):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_poll - time.monotonic()))
            self._wake.clear()

    async def _claim(self, stage: Stage) -> int:
        free = self._free(stage)
        if free == 0:
            return 0
        assert self._pool is not None
        rows = await self._pool.fetch("select * from wf.claim($1, $2)", stage.name, free)
        self._last_db_contact = time.monotonic()
        if len(rows) < free:
            self._ready.discard(stage.name)
        for row in rows:
            stage.in_flight += 1
            self.metrics.in_flight.labels(stage.name).inc()
            task = asyncio.create_task(self._execute(stage, row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(rows)

    # ---- one step -----------------------------------------------------------

    async def _execute(self, stage: Stage, task: asyncpg.Record) -> None:
        started = time.perf_counter()
        outcome: Outcome | _Skip
        self._leases[_key(task)] = task["visible_until"]
        try:
            outcome = await self._perform(task)
            await self._report(task, outcome)
        except asyncio.CancelledError:
            outcome = Outcome(False, error="cancelled at shutdown")
            raise
        except Exception as exc:  # containment: one bad step never takes the worker down
            outcome = Outcome(False, error=f"worker error: {type(exc).__name__}: {exc}", retryable=True)
            with contextlib.suppress(Exception):
                await self._report(task, outcome)
        finally:
            self._leases.pop(_key(task), None)
            stage.in_flight -= 1
            self._finished += 1
            self.metrics.in_flight.labels(stage.name).dec()
            self._ready.add(stage.name)
            self._wake.set()
            self._log_call(stage, task, outcome, time.perf_counter() - started)

    async def _perform(self, task: asyncpg.Record) -> Outcome | _Skip:
        assert self._caller is not None
        ctx = build_context(task["context"])
        try:
            if not render_when(task["when_template"], ctx, task["step"]):
                return _Skip(f"when rendered false: {task['when_template']}")
            payload = render_payload(task["payload_template"], ctx, task["step"])
        except RenderError as exc:
            return Outcome(False, error=f"run {task['run_id']}: {exc}", retryable=False)
        call = Call(str(task["run_id"]), task["step"], task["attempt"], task["function"], task["action"],
                    payload, float(task["timeout_seconds"]), task["correlation_id"])
        heartbeat = None
        if self._seconds_left(self._leases[_key(task)]) < call.timeout_seconds + _EXTEND_MARGIN:
            heartbeat = asyncio.create_task(self._heartbeat(task))
        try:
            return await self._caller.call(call)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()

    @staticmethod
    def _seconds_left(until: datetime) -> float:
        return (until - datetime.now(UTC)).total_seconds()

    async def _heartbeat(self, task: asyncpg.Record) -> None:
        """Keep the message invisible while a long call runs (wf.extend)."""
        assert self._pool is not None
        extend_by = int(task["timeout_seconds"]) + 15
        while True:
            await asyncio.sleep(max(0.5, self._seconds_left(self._leases[_key(task)]) - _EXTEND_MARGIN))
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                if not await self._pool.fetchval("select wf.extend($1, $2, $3, $4)", task["run_id"],
                                                 task["step"], task["attempt"], extend_by):
                    return
                self._leases[_key(task)] = datetime.now(UTC) + timedelta(seconds=extend_by)

    async def _report(self, task: asyncpg.Record, outcome: Outcome | _Skip) -> None:
        """Hand the answer to SQL; on a lost connection retry until the attempt's lease runs out."""
        assert self._pool is not None
        if isinstance(outcome, Outcome) and outcome.error is not None:
            outcome = replace(outcome, error=_storable(outcome.error))
        delay = 0.2
        while True:
            try:
                if isinstance(outcome, _Skip):
                    await self._pool.fetchval("select wf.skip($1, $2, $3, $4)", task["run_id"], task["step"],
                                              task["attempt"], outcome.reason)
                elif outcome.ok:
                    assert self._completes is not None
                    await self._completes.complete(task["run_id"], task["step"], task["attempt"], outcome.output)
                else:
                    await self._pool.fetchval("select wf.fail($1, $2, $3, $4, $5, $6, $7)", task["run_id"],
                                              task["step"], task["attempt"], outcome.error, outcome.retryable,
                                              outcome.http_status, outcome.retry_after)
                self._last_db_contact = time.monotonic()
                return
            except asyncpg.PostgresError as exc:
                if isinstance(outcome, Outcome) and outcome.ok and (exc.sqlstate or "").startswith("22"):
                    # data the database cannot store (e.g. \u0000 in jsonb): a final step error, not a
                    # dropped report that leaves the step running until its lease runs out
                    outcome = Outcome(False, error=_storable(f"the database refused the output: {exc}"),
                                      http_status=outcome.http_status)
                    continue
                if (exc.sqlstate or "").startswith(_PERMANENT_SQLSTATE):
                    log("report_rejected", level="error", run_id=str(task["run_id"]), step=task["step"],
                        attempt=task["attempt"], error=str(exc))
                    return
                error: Exception = exc
            except (OSError, asyncpg.InterfaceError, TimeoutError) as exc:
                error = exc
            if self._seconds_left(self._leases.get(_key(task), task["visible_until"])) < 0:
                log("report_lost", level="warning", run_id=str(task["run_id"]), step=task["step"],
                    attempt=task["attempt"], error=str(error),
                    note="the lease ran out: the message comes back and the attempt is recorded as lost")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _log_call(self, stage: Stage, task: asyncpg.Record, outcome: Outcome | _Skip, seconds: float) -> None:
        if isinstance(outcome, _Skip):
            status, fields = "skipped", {"reason": outcome.reason}
        elif outcome.ok:
            status, fields = "succeeded", {}
        else:
            status = "retryable_error" if outcome.retryable else "error"
            fields = {"error": outcome.error}
        http_status = getattr(outcome, "http_status", None)
        self.metrics.calls.labels(stage.name, status).inc()
        self.metrics.duration.labels(stage.name).observe(seconds)
        log("call", run_id=str(task["run_id"]), step=task["step"], attempt=task["attempt"],
            function=stage.name, status=status, http_status=http_status,
            duration_ms=round(seconds * 1000, 1), **fields)


def _key(task: asyncpg.Record) -> tuple[Any, str, int]:
    return task["run_id"], task["step"], task["attempt"]


async def run_worker(config: WorkerConfig) -> int:
    return await Worker(config).run()
