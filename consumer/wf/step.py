"""One claimed step: render its templates, call its function, report the answer, log one line.

By kind: a function step is an HTTP call; a workflow step starts its child run (wf.start_child) and a sql
step runs its function in SQL (wf.complete_sql) — both rendered here, reported like answers. A step with
not_before first asks wf.defer: if its time is still ahead, the attempt is given back and nothing else runs.

A call longer than what is left of the claim's lease gets a heartbeat (wf.extend) that keeps the message
invisible while it runs. Whatever goes wrong with one step is contained here: it is reported as a
retryable worker error and never takes the worker down. Each attempt is a span when tracing is on
(wf.tracing), and its traceparent goes with the call either way.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from wf import queries
from wf.calls import Call, Caller, Outcome
from wf.leases import Leases
from wf.logs import log
from wf.metrics import Metrics
from wf.render import RenderError, build_context, render_items, render_not_before, render_payload, render_when
from wf.reports import Expand, Report, Reporter, RunSql, Skip, StartChild
from wf.tracing import Attempt, Tracer

EXTEND_MARGIN = 10.0  # seconds before the lease runs out at which the heartbeat extends it
# the field a step's template is, by kind (named in render errors)
TEMPLATE_KEYS = {"function": "payload_template", "workflow": "input_template", "sql": "args_template"}


class StepRunner:
    def __init__(self, pool: asyncpg.Pool, caller: Caller, reporter: Reporter, leases: Leases,
                 metrics: Metrics, tracer: Tracer | None = None) -> None:
        self._pool = pool
        self._caller = caller
        self._reporter = reporter
        self._leases = leases
        self._metrics = metrics
        self._tracer = tracer if tracer is not None else Tracer()

    async def run(self, stage: str, task: asyncpg.Record) -> None:
        """Perform and report one claimed step; raises only CancelledError (shutdown)."""
        started = time.perf_counter()
        outcome: Report | None
        self._leases.hold(task)
        span = self._tracer.attempt(task["run_id"], task["workflow"], task["step"], task["attempt"], task["kind"])
        try:
            outcome = await self._perform(task, span)
            if outcome is not None:
                await self._reporter.report(task, outcome)
        except asyncio.CancelledError:
            outcome = Outcome(False, error="cancelled at shutdown")
            raise
        except Exception as exc:  # containment: one bad step never takes the worker down
            outcome = Outcome(False, error=f"worker error: {type(exc).__name__}: {exc}", retryable=True)
            try:
                await self._reporter.report(task, outcome)
            except Exception as report_exc:
                log("report_failed", level="error", run_id=str(task["run_id"]), step=task["step"],
                    attempt=task["attempt"], error=f"{type(report_exc).__name__}: {report_exc}",
                    note="the message comes back after the visibility timeout")
        finally:
            self._leases.release(task)
            self._log_call(stage, task, outcome, time.perf_counter() - started, span)

    async def _perform(self, task: asyncpg.Record, span: Attempt) -> Report | None:
        """What to report for the step, or None when nothing is (its not_before is still ahead)."""
        ctx = build_context(task["context"])
        kind = task["kind"]
        is_item = task["item"] is not None
        try:
            # not_before and when are the map step's, decided once before it expands, not per item
            if task["not_before"] is not None and not is_item:
                until = render_not_before(task["not_before"], task["offset_seconds"], ctx, task["step"])
                # the database's clock decides: false when the time has come
                if await self._pool.fetchval(queries.DEFER, task["run_id"], task["step"], task["attempt"], until):
                    return None
            if not is_item and not render_when(task["when_template"], ctx, task["step"]):
                return Skip(f"when rendered false: {task['when_template']}")
            if task["for_each"] is not None and not is_item:
                return Expand(render_items(task["for_each"], ctx, task["step"]))
            payload = render_payload(task["payload_template"], ctx, task["step"], TEMPLATE_KEYS[kind])
        except RenderError as exc:
            return Outcome(False, error=f"run {task['run_id']}: {exc}", retryable=False)
        if kind == "workflow":
            return StartChild(payload)
        if kind == "sql":
            return RunSql(payload)
        call = Call(str(task["run_id"]), task["step"], task["attempt"], task["function"], task["action"],
                    payload, float(task["timeout_seconds"]), task["correlation_id"], span.traceparent)
        heartbeat = None
        if self._leases.seconds_left(task) < call.timeout_seconds + EXTEND_MARGIN:
            heartbeat = asyncio.create_task(self._heartbeat(task))
        try:
            return await self._caller.call(call)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()

    async def _heartbeat(self, task: asyncpg.Record) -> None:
        """Keep the message invisible while a long call runs (wf.extend)."""
        extend_by = int(task["timeout_seconds"]) + 15
        while True:
            await asyncio.sleep(max(0.5, self._leases.seconds_left(task) - EXTEND_MARGIN))
            try:
                if not await self._pool.fetchval(queries.EXTEND, task["run_id"], task["step"], task["attempt"],
                                                 extend_by):
                    return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log("extend_failed", level="warning", run_id=str(task["run_id"]), step=task["step"],
                    attempt=task["attempt"], error=f"{type(exc).__name__}: {exc}",
                    seconds_left=round(self._leases.seconds_left(task), 1))
                continue
            self._leases.extend(task, extend_by)

    def _log_call(self, stage: str, task: asyncpg.Record, outcome: Report | None, seconds: float,
                  span: Attempt) -> None:
        if outcome is None:
            status, fields = "deferred", {"not_before": task["not_before"]}
        elif isinstance(outcome, Expand):
            status, fields = "map_started", {"items": len(outcome.items)}
        elif isinstance(outcome, StartChild):
            status, fields = "child_started", {"workflow": task["action"]}
        elif isinstance(outcome, RunSql):
            status, fields = "sql_ran", {"sql": task["action"]}
        elif isinstance(outcome, Skip):
            status, fields = "skipped", {"reason": outcome.reason}
        elif outcome.ok:
            status, fields = "succeeded", {}
        else:
            status = "retryable_error" if outcome.retryable else "error"
            fields = {"error": outcome.error}
        http_status = getattr(outcome, "http_status", None)
        span.end(status, http_status, getattr(outcome, "error", None))
        self._metrics.calls.labels(stage, status).inc()
        self._metrics.duration.labels(stage).observe(seconds)
        log("call", run_id=str(task["run_id"]), step=task["step"], attempt=task["attempt"],
            function=stage, status=status, http_status=http_status,
            duration_ms=round(seconds * 1000, 1), **fields)
