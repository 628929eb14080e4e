"""The consumer loop: claim → render → call → report. SQL decides everything else.

The loop claims, per ready stage, as many steps as there is room for, and runs each in its own task
(wf.step, which reports through wf.reports); wf.wakeups tells it which stages may have work. One asyncpg
pool serves claims and reports, one more connection LISTENs.

- Side tasks (listener, stage refresh with queue gauges, tick, /metrics) are supervised: they log and
  restart, they never take the loop down.
- Each iteration is contained: a failed claim round logs, backs off and goes on; a failed step is
  reported as a worker error by wf.step.
- Secrets (wf.secrets) named in Supabase Vault are read once the pool is up, and again on SIGHUP: the
  caller takes the new ones for the calls that follow; a failed re-read keeps the old ones.
- Shutdown is explicit: stop() stops claiming; in-flight steps get `grace` seconds, the rest are
  cancelled; then the side tasks, the answer batcher, /metrics and the pool close, in that order, and
  the tracer (wf.tracing) flushes its last spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from wf import db, queries, secrets, tracing
from wf.calls import Caller
from wf.leases import Leases
from wf.logs import log
from wf.metrics import HealthServer, LastContact, Metrics, SlotClock
from wf.reports import CompleteBatcher, Reporter
from wf.step import EXTEND_MARGIN, StepRunner
from wf.wakeups import Stage, Wakeups

__all__ = ["Stage", "Worker", "WorkerConfig", "run_worker"]

TICK_SECONDS = 60.0



def did_something(tick: dict[str, Any]) -> bool:
    """Whether a tick's result is worth a log line: a count that is not 0, a list that is not
    empty, at any depth (its alerts are {"open": 0, "started": 0} on a quiet tick)."""
    return any(did_something(v) if isinstance(v, dict) else bool(v) for v in tick.values())

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
    # steps claimed beyond the free slots, started the moment a slot frees (None: as many as the slots)
    claim_ahead: int | None = None
    max_response_bytes: int = 1_048_576
    stop_requested: Callable[[], bool] | None = None  # a signal that came before the loop's handlers
    # where the token and signing secret come from (environment or Vault); None: token and signing_secret above
    secret_sources: secrets.SecretSources | None = None


@dataclass
class Worker:
    config: WorkerConfig
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self._stopping = asyncio.Event()
        self._contact = LastContact()
        self._wakeups = Wakeups(self.config.dsn, self.config.stages, self.metrics, self._contact, self._stopping)
        self._leases = Leases()
        self._tasks: set[asyncio.Task[None]] = set()
        # slots taken: freed by the step itself before it wakes the dispatcher (a task leaves
        # _tasks only in its done callback, after the dispatcher may already have looked)
        self._busy = 0
        # claimed ahead: started by a finishing step in its own slot, without waiting for a claim
        self._ahead: deque[tuple[Stage, asyncpg.Record]] = deque()
        self._ahead_limit = (self.config.claim_ahead if self.config.claim_ahead is not None
                             else self.config.concurrency)
        self._slots = SlotClock(self.metrics, self.config.concurrency)
        # stages whose last claim got all it asked for: messages were waiting (free slots are a stall)
        self._backlog: set[str] = set()
        self._side: list[asyncio.Task[None]] = []
        self._pool: asyncpg.Pool | None = None
        self._steps: StepRunner | None = None
        self._finished = 0  # steps done (reported) so far
        self._caller: Caller | None = None
        self._reload: asyncio.Task[None] | None = None
        self._reload_again = False  # a SIGHUP while a re-read runs (or before the caller exists)

    # ---- lifecycle -------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; in-flight calls finish within the grace period."""
        if not self._stopping.is_set():
            log("worker_stopping", in_flight=len(self._tasks), grace_seconds=self.config.grace)
        self._stopping.set()
        self._wakeups.wake.set()

    async def run(self) -> int:
        self._handle_signals()
        if self.config.stop_requested is not None and self.config.stop_requested():
            self.stop()
        cfg = self.config
        pool = self._pool = await self._connect_pool()
        if pool is None:
            return 0
        health = HealthServer(self.metrics, lambda: self._contact.at)
        completes = CompleteBatcher(pool)
        tracer = tracing.setup()
        try:
            current = await self._read_secrets(pool)
            async with Caller(cfg.functions_url, current.token, current.signing_secret,
                              max_connections=cfg.concurrency, max_response_bytes=cfg.max_response_bytes) as caller:
                self._caller = caller
                if self._reload_again:  # a SIGHUP came while the secrets were read at start
                    self.reload_secrets()
                reporter = Reporter(pool, completes, self._leases, self._contact)
                self._steps = StepRunner(pool, caller, reporter, self._leases, self.metrics, tracer)
                await self._wakeups.refresh(pool)
                if cfg.metrics_port is not None:
                    await health.start(cfg.metrics_port)
                if not cfg.once:
                    self._supervise("listener", self._wakeups.listen)
                    self._supervise("stages", lambda: self._wakeups.refresh_forever(pool))
                    if not await pool.fetchval(queries.TICK_SCHEDULED):
                        self._supervise("tick", self._tick_forever)
                stages = self._wakeups.stages
                log("worker_started", stages=sorted(stages), concurrency=cfg.concurrency, once=cfg.once)
                unknown = sorted(set(cfg.stages) - set(stages))
                if unknown:
                    log("unknown_stages", level="warning", stages=unknown,
                        note="no workflow calls these functions yet; they are served once one does")
                await self._dispatch()
                await self._drain()
        finally:
            self._caller = None  # a SIGHUP from here on re-reads nothing
            for task in (*self._side, *([self._reload] if self._reload else [])):
                task.cancel()
            await asyncio.gather(*self._side, *([self._reload] if self._reload else []), return_exceptions=True)
            await completes.close()
            await health.stop()
            await pool.close()
            await asyncio.to_thread(tracer.shutdown)  # flushes the last spans (bounded)
        log("worker_stopped")
        return 0

    def _handle_signals(self) -> None:
        loop = asyncio.get_running_loop()
        handlers: list[tuple[signal.Signals, Callable[[], None]]] = [(signal.SIGTERM, self.stop),
                                                                    (signal.SIGINT, self.stop)]
        if self._vault_names():
            handlers.append((signal.SIGHUP, self.reload_secrets))
        for sig, handler in handlers:
            try:
                loop.add_signal_handler(sig, handler)
            except (NotImplementedError, RuntimeError) as exc:  # not the main thread, or no signals here
                log("signal_not_handled", level="warning", signal=sig.name, error=f"{type(exc).__name__}: {exc}")

    # ---- secrets ----------------------------------------------------------

    def _vault_names(self) -> list[str]:
        sources = self.config.secret_sources
        return sources.vault_names if sources is not None else []

    async def _read_secrets(self, pool: asyncpg.Pool) -> secrets.Secrets:
        """At start: the secrets to call with (secrets.SecretError when one is missing or empty)."""
        sources = self.config.secret_sources
        if sources is None:
            return secrets.Secrets(self.config.token, self.config.signing_secret)
        current = await secrets.read(pool, sources)
        log("secrets_read", **self._secret_origins(sources))
        return current

    @staticmethod
    def _secret_origins(sources: secrets.SecretSources) -> dict[str, str]:
        """Where each secret came from, for the log: names, never values."""
        def origin(vault: str | None, value: str | None, variable: str) -> str:
            return f"vault:{vault}" if vault else (f"env:{variable}" if value else "unset")

        return {"token": origin(sources.token_vault, sources.token, secrets.TOKEN_ENV),
                "signing_secret": origin(sources.signing_vault, sources.signing_secret, secrets.SIGNING_ENV)}

    def reload_secrets(self) -> None:
        """SIGHUP: read the Vault secrets again; the calls that follow use them. One re-read at a time."""
        if self._caller is None or (self._reload is not None and not self._reload.done()):
            self._reload_again = True
            return
        self._reload = asyncio.create_task(self._reload_secrets(), name="wf-secrets")

    async def _reload_secrets(self) -> None:
        assert self._pool is not None and self._caller is not None and self.config.secret_sources is not None
        self._reload_again = True
        while self._reload_again:
            self._reload_again = False
            try:
                fresh = await secrets.read(self._pool, self.config.secret_sources)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the old secrets stay; the message names the secret, never a value
                error = str(exc) if isinstance(exc, secrets.SecretError) else f"{type(exc).__name__}: {exc}"
                log("secrets_reload_failed", level="warning", error=error.splitlines()[0] if error else "",
                    note="the secrets read before stay in use")
                continue
            self._caller.set_secrets(fresh.token, fresh.signing_secret)
            log("secrets_reloaded", **self._secret_origins(self.config.secret_sources))

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
        """In-flight calls, and the claimed-ahead steps they hand their slots to, finish within the
        grace period; what is left is cancelled and comes back after its visibility timeout."""
        deadline = time.monotonic() + self.config.grace
        while self._tasks and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(set(self._tasks), timeout=left, return_when=asyncio.FIRST_COMPLETED)
        pending = set(self._tasks)
        for task in pending:
            task.cancel()
        if pending or self._ahead:
            log("grace_expired", level="warning", cancelled=len(pending), not_started=len(self._ahead),
                note="their messages come back after the visibility timeout, as lost attempts")
            await asyncio.gather(*pending, return_exceptions=True)

    async def _tick_forever(self) -> None:
        """Without pg_cron the workers run the minute job themselves (it is safe to run twice)."""
        assert self._pool is not None
        while not self._stopping.is_set():
            result = await self._pool.fetchval(queries.TICK)
            self._contact.touch()
            if did_something(result):
                log("tick", **result)
            await self._sleep(TICK_SECONDS)

    # ---- dispatch -----------------------------------------------------------

    def _free(self, stage: Stage) -> int:
        """How many steps of the stage to claim now: the free slots plus the claim-ahead room,
        never past the stage's own limit (claimed-ahead steps count against it)."""
        free = self.config.concurrency + self._ahead_limit - self._busy - len(self._ahead)
        if stage.max_concurrency is not None:
            free = min(free, stage.max_concurrency - stage.in_flight - stage.ahead)
        return max(0, min(free, self.config.batch_size))

    async def _dispatch(self) -> None:
        wakeups = self._wakeups
        next_poll = 0.0
        failures = 0
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_poll or self.config.once:
                wakeups.poll()
                next_poll = now + self.config.poll_interval
            claimed = 0
            finished_before = self._finished
            try:
                for stage in list(wakeups.stages.values()):
                    if stage.name in wakeups.ready and not self._stopping.is_set():
                        claimed += await self._claim(stage)
                failures = 0
            except Exception as exc:  # containment: a claim that fails in any way never ends the worker
                # (after a database restart asyncpg can also raise InternalClientError, no InterfaceError)
                failures += 1
                delay = min(0.5 * 2 ** (failures - 1), 10)
                log("claim_failed", level="warning", error=f"{type(exc).__name__}: {exc}", retry_in=delay)
                await self._sleep(delay)
                continue
            self._slots.update(self._busy, bool(self._backlog))
            if self.config.once and claimed == 0:
                # a step that finished during this round may have queued one in a stage already looked at
                if not self._tasks:
                    if self._finished == finished_before:
                        return
                    continue
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                continue
            if claimed and any(s.name in wakeups.ready and self._free(s) for s in wakeups.stages.values()):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeups.wake.wait(), max(0.0, next_poll - time.monotonic()))
            wakeups.wake.clear()

    async def _claim(self, stage: Stage) -> int:
        free = self._free(stage)
        if free == 0:
            return 0
        assert self._pool is not None
        rows = await self._pool.fetch(queries.CLAIM, stage.name, free)
        self._contact.touch()
        if len(rows) < free:
            self._wakeups.ready.discard(stage.name)
            self._backlog.discard(stage.name)
        else:
            self._backlog.add(stage.name)
        for row in rows:
            if self._busy < self.config.concurrency:
                self._start(stage, row, waited=False)
            else:
                stage.ahead += 1
                self._ahead.append((stage, row))
        self.metrics.claimed_ahead.set(len(self._ahead))
        return len(rows)

    def _start(self, stage: Stage, row: asyncpg.Record, *, waited: bool) -> None:
        self._busy += 1
        stage.in_flight += 1
        self.metrics.in_flight.labels(stage.name).inc()
        self._slots.update(self._busy, bool(self._backlog))
        task = asyncio.create_task(self._run_step(stage, row, waited))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_ahead(self) -> None:
        """A slot is free: the next claimed-ahead step takes it at once."""
        while self._ahead and self._busy < self.config.concurrency:
            stage, row = self._ahead.popleft()
            stage.ahead -= 1
            self._start(stage, row, waited=True)
        self.metrics.claimed_ahead.set(len(self._ahead))

    async def _run_step(self, stage: Stage, row: asyncpg.Record, waited: bool) -> None:
        assert self._steps is not None
        try:
            if waited and not await self._lease_holds(row):
                return
            await self._steps.run(stage.name, row)
        finally:
            # guard: the slot is free, and taken by the next claimed-ahead step, before anyone is
            # told so (a lost wake-up otherwise)
            self._busy -= 1
            stage.in_flight -= 1
            self._finished += 1
            self.metrics.in_flight.labels(stage.name).dec()
            self._start_ahead()
            self._slots.update(self._busy, bool(self._backlog))
            self._wakeups.mark_ready(stage.name)

    async def _lease_holds(self, row: asyncpg.Record) -> bool:
        """A step that waited for its slot near the end of its lease gets the lease extended first;
        if the attempt is no longer current (its message came back), it is not called."""
        if self._leases.seconds_left(row) >= EXTEND_MARGIN:
            return True
        assert self._pool is not None
        extend_by = int(row["timeout_seconds"]) + 15
        if await self._pool.fetchval(queries.EXTEND, row["run_id"], row["step"], row["attempt"], extend_by):
            self._leases.extend(row, extend_by)
            return True
        log("claimed_ahead_lost", level="warning", run_id=str(row["run_id"]), step=row["step"],
            attempt=row["attempt"], note="it waited past its lease; the next claim records the lost attempt")
        return False


async def run_worker(config: WorkerConfig) -> int:
    return await Worker(config).run()
