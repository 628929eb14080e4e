"""Reports: hand each answer to SQL (wf.complete, wf.fail, wf.skip; wf.start_child and wf.complete_sql for
workflow and sql steps), with group commit for completes.

A report lost to a dropped connection is retried until the attempt's lease runs out; one the database
rejects for good (errors.permanent) is logged and dropped. Group commit: idle, an answer goes at once (no
added latency); under load, answers that arrive while a batch is in flight wait for the next one, so the
database runs one statement and one commit for many steps instead of one each (wf.complete_batch: each
answer still checked on its own attempt, run locks taken in id order like claims, messages archived once
per queue). One lane by default: with one batch in flight the next gathers every answer that arrives
meanwhile (measured at concurrency 16: one lane 1,752 steps/s, two lanes 1,562; equal at 64).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg

from wf import errors, queries
from wf.calls import Outcome
from wf.leases import Leases, seconds_left
from wf.logs import log
from wf.metrics import LastContact

_LOGGED_ANSWERS = 10  # a failed batch names at most this many of its answers in the log


@dataclass(frozen=True)
class Skip:
    """The step's `when` rendered false: wf.skip instead of a call."""

    reason: str


@dataclass(frozen=True)
class StartChild:
    """A workflow step: wf.start_child with the rendered input_template (the child's end answers the step)."""

    input: Any


@dataclass(frozen=True)
class RunSql:
    """A sql step: wf.complete_sql with the rendered args_template (the function runs in the recording transaction)."""

    args: Any


@dataclass(frozen=True)
class Expand:
    """A map step: wf.expand_map with its for_each rendered (its items then run as steps of their own)."""

    items: list[Any]


Report = Outcome | Skip | StartChild | RunSql | Expand


def carries_data(report: Report) -> bool:
    """Whether the report hands the database a value it might refuse (a successful output, an input, args)."""
    return isinstance(report, StartChild | RunSql | Expand) or (isinstance(report, Outcome) and report.ok)


def storable(text: str) -> str:
    """PostgreSQL text cannot hold U+0000, and an error text is quoted from whatever the function sent."""
    return text.replace("\x00", "\ufffd")


@dataclass
class _Answer:
    run_id: Any
    step: str
    attempt: int
    output: Any
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def settle(self, error: BaseException | None = None) -> None:
        """Wake the waiting report, unless it has stopped waiting (cancelled at shutdown)."""
        if self.done.done():
            return
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


class CompleteBatcher:
    def __init__(self, pool: asyncpg.Pool, lanes: int = 1, max_batch: int = 64) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Answer] = asyncio.Queue()
        self._lanes = [asyncio.create_task(self._lane(), name=f"wf-complete-lane-{i}") for i in range(lanes)]

    async def complete(self, run_id: Any, step: str, attempt: int, output: Any) -> None:
        """wf.complete for one answer; raises what the database raised for it."""
        answer = _Answer(run_id, step, attempt, output)
        await self._queue.put(answer)
        await answer.done

    async def close(self) -> None:
        for lane in self._lanes:
            lane.cancel()
        await asyncio.gather(*self._lanes, return_exceptions=True)

    async def _lane(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._send([a for a in batch if not a.done.cancelled()])

    async def _send(self, batch: list[_Answer]) -> None:
        if len(batch) > 1:
            try:
                await self._pool.fetchval(queries.COMPLETE_BATCH, [a.run_id for a in batch],
                                          [a.step for a in batch], [a.attempt for a in batch],
                                          [a.output for a in batch])
            except Exception as exc:  # one bad answer must not fail the others: send them one by one
                log("complete_batch_failed", level="warning", answers=len(batch),
                    error=f"{type(exc).__name__}: {exc}", note="sending its answers one by one",
                    steps=[{"run_id": str(a.run_id), "step": a.step, "attempt": a.attempt}
                           for a in batch[:_LOGGED_ANSWERS]])
            else:
                for answer in batch:
                    answer.settle()
                return
        for answer in batch:
            try:
                await self._pool.fetchval(queries.COMPLETE, answer.run_id, answer.step, answer.attempt,
                                          answer.output)
            except Exception as exc:
                answer.settle(exc)
            else:
                answer.settle()


class Reporter:
    """Hands one step's answer to SQL; on a lost connection retries until the attempt's lease runs out."""

    def __init__(self, pool: asyncpg.Pool, completes: CompleteBatcher, leases: Leases,
                 contact: LastContact) -> None:
        self._pool = pool
        self._completes = completes
        self._leases = leases
        self._contact = contact

    async def report(self, task: asyncpg.Record, outcome: Report) -> None:
        if isinstance(outcome, Outcome) and outcome.error is not None:
            outcome = replace(outcome, error=storable(outcome.error))
        delay = 0.2
        while True:
            try:
                await self._send(task, outcome)
                self._contact.touch()
                return
            except asyncpg.PostgresError as exc:
                if carries_data(outcome) and errors.refused_value(exc.sqlstate):
                    # data the database cannot store (e.g. \u0000 in jsonb): a final step error, not a
                    # dropped report that leaves the step running until its lease runs out
                    what = {StartChild: "the child's input", RunSql: "the args",
                            Expand: "the items"}.get(type(outcome), "the output")
                    outcome = Outcome(False, error=storable(f"the database refused {what}: {exc}"),
                                      http_status=getattr(outcome, "http_status", None))
                    continue
                if errors.permanent(exc.sqlstate):
                    log("report_rejected", level="error", run_id=str(task["run_id"]), step=task["step"],
                        attempt=task["attempt"], error=str(exc))
                    return
                error: Exception = exc
            except (OSError, asyncpg.InterfaceError, TimeoutError) as exc:
                error = exc
            if seconds_left(self._leases.until(task)) < 0:
                log("report_lost", level="warning", run_id=str(task["run_id"]), step=task["step"],
                    attempt=task["attempt"], error=str(error),
                    note="the lease ran out: the message comes back and the attempt is recorded as lost")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _send(self, task: asyncpg.Record, outcome: Report) -> None:
        if isinstance(outcome, Expand):
            await self._pool.fetchval(queries.EXPAND_MAP, task["run_id"], task["step"], task["attempt"],
                                      outcome.items)
        elif isinstance(outcome, StartChild):
            await self._pool.fetchval(queries.START_CHILD, task["run_id"], task["step"], task["attempt"], outcome.input)
        elif isinstance(outcome, RunSql):
            # a lost connection after the commit is safe to retry: the attempt is no longer current, so
            # the retry is a stale answer and the function does not run twice
            await self._pool.fetchval(queries.COMPLETE_SQL, task["run_id"], task["step"], task["attempt"],
                                      outcome.args)
        elif isinstance(outcome, Skip):
            await self._pool.fetchval(queries.SKIP, task["run_id"], task["step"], task["attempt"], outcome.reason)
        elif outcome.ok:
            await self._completes.complete(task["run_id"], task["step"], task["attempt"], outcome.output)
        else:
            await self._pool.fetchval(queries.FAIL, task["run_id"], task["step"], task["attempt"], outcome.error,
                                      outcome.retryable, outcome.http_status, outcome.retry_after)
