"""Wake-ups: which stages may have work now, and the event that wakes the loop.

Three sources: one LISTEN connection on channel `wf` (each NOTIFY names a queue: its stage is ready), a
poll every `poll_interval` that marks every stage ready (delayed messages, expired leases, missed
notifications; the loop times it), and a step that finished (its stage has room again). The stage list,
with per-stage limits and queue depths, is read at start, every 10 s, and at once when a NOTIFY names a
queue this worker does not know (a new workflow).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg

from wf import queries
from wf.logs import log
from wf.metrics import LastContact, Metrics

CHANNEL = "wf"  # wf's pg_notify channel: the payload is the queue that got a message
DLQ = "wf_dlq"
INTERNAL_STAGE = "_wf"  # sql/migrations/0011: steps that are not function calls, and child runs ending
REFRESH_SECONDS = 10.0
LISTEN_CHECK_SECONDS = 15.0  # how often the idle LISTEN connection proves it is alive


@dataclass
class Stage:
    name: str
    queue: str
    max_concurrency: int | None
    in_flight: int = 0  # calls running
    ahead: int = 0  # claimed, waiting for a free slot


class Wakeups:
    def __init__(self, dsn: str, wanted: tuple[str, ...], metrics: Metrics, contact: LastContact,
                 stopping: asyncio.Event) -> None:
        self._dsn = dsn
        # --stages narrows the functions served; the internal stage (workflow, sql and wait_for steps,
        # child runs ending) is always served
        self._wanted = set(wanted) | {INTERNAL_STAGE} if wanted else set()
        self._metrics = metrics
        self._contact = contact
        self._stopping = stopping
        self.stages: dict[str, Stage] = {}
        self.ready: set[str] = set()  # stages that may have work: the loop claims from these
        self.wake = asyncio.Event()
        self.stages_changed = asyncio.Event()
        self._by_queue: dict[str, str] = {}
        # queues whose NOTIFY is not ours to serve: the DLQ and the stages --stages leaves out
        self._ignored_queues: set[str] = {DLQ}

    def mark_ready(self, stage: str) -> None:
        self.ready.add(stage)
        self.wake.set()

    def poll(self) -> None:
        """Every stage may have work (the loop's periodic poll)."""
        self.ready.update(self.stages)

    async def refresh(self, pool: asyncpg.Pool) -> None:
        """The stages, their per-stage limits and queue depths (through a function a wf_worker login may call)."""
        rows = await pool.fetch(queries.WORKER_STAGES)
        self._contact.touch()
        for row in rows:
            if self._wanted and row["name"] not in self._wanted:
                self._ignored_queues.add(row["queue"])
                continue
            self._metrics.queue_depth.labels(row["name"]).set(row["queue_length"])
            stage = self.stages.get(row["name"])
            if stage is None:
                self.stages[row["name"]] = Stage(row["name"], row["queue"], row["max_concurrency"])
                self.ready.add(row["name"])
                self.wake.set()
            else:
                stage.max_concurrency = row["max_concurrency"]
            self._by_queue[row["queue"]] = row["name"]

    async def refresh_forever(self, pool: asyncpg.Pool) -> None:
        """Every 10 s, or at once when a message arrives on a queue we do not know (a new workflow)."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stages_changed.wait(), REFRESH_SECONDS)
            self.stages_changed.clear()
            await self.refresh(pool)

    def on_notify(self, _conn: object, _pid: int, _channel: str, queue: str) -> None:
        stage = self._by_queue.get(queue)
        if stage is not None:
            self.ready.add(stage)
            self.wake.set()
        elif queue not in self._ignored_queues:
            self.stages_changed.set()

    async def listen(self) -> None:
        """LISTEN until the connection is lost (raises, so the supervisor reconnects) or the worker stops."""
        conn = await asyncpg.connect(self._dsn)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(CHANNEL, self.on_notify)
            self.ready.update(self.stages)  # anything sent while we were not listening
            self.wake.set()
            while not self._stopping.is_set() and not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), LISTEN_CHECK_SECONDS)
                if not lost.is_set():
                    await conn.execute(queries.PING)  # a dead socket shows itself here
            if lost.is_set():
                raise ConnectionError("LISTEN connection lost")
        finally:
            try:
                await conn.close(timeout=2)
            except Exception as exc:  # a lost connection often cannot be closed cleanly: nothing is left to do
                log("listener_close_failed", level="debug", error=f"{type(exc).__name__}: {exc}")
