"""OpenTelemetry traces of step attempts, and the W3C `traceparent` header of every call (DESIGN §12).

On only when both hold, otherwise a no-op that never imports opentelemetry:
- the `otel` extra is installed (`pip install 'wf[otel]'`: the SDK and the OTLP/HTTP exporter);
- the standard variables ask for it: OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
  set, OTEL_TRACES_EXPORTER is not "none" and OTEL_SDK_DISABLED is not "true".
Then one TracerProvider (service.name: OTEL_SERVICE_NAME, else "wf-worker") exports through a
BatchSpanProcessor(OTLPSpanExporter()); the exporter and the processor read the other OTEL_* variables
(headers, timeout, OTEL_BSP_*) themselves, the provider reads OTEL_TRACES_SAMPLER. Export happens in the
SDK's background thread: a collector that is down costs logged export errors, never a call.

One trace per run, whichever worker runs which attempt, with nothing stored: the trace id IS the run id
(its 128 bits). Each attempt is one span, "wf.step <step>", attributes wf.run_id, wf.workflow, wf.step,
wf.attempt, wf.kind, wf.status (succeeded, error, retryable_error, skipped, deferred, ...),
http.response.status_code and wf.error; status ERROR when the attempt failed. Its parent is a remote
span that is never exported, "the run": its span id is derived from the run id too, so every attempt of
a run hangs under the same parent.

The `traceparent` header (`00-<run id as 32 hex>-<span id>-01`) goes with every function call, traced
or not. Traced, the span id is the attempt's span, so the function's own spans nest under it. Not
traced, the span id is random: the trace id still names the run, which costs one format per call and
lets a function's own tracing group its spans by run. The flags say sampled (01) in both cases, so a
function that samples by its parent keeps them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import uuid
from collections.abc import Mapping
from typing import Any

from wf.logs import log

SERVICE_NAME = "wf-worker"
SHUTDOWN_FLUSH_MILLIS = 5000
_MASK64 = (1 << 64) - 1


def configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether the OTEL_* variables ask for trace export (the extra may still be missing)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def trace_id(run_id: object) -> int:
    """The run's trace id: the run id's 128 bits (a run id that is not a uuid is hashed)."""
    as_int = getattr(run_id, "int", None)  # uuid.UUID and asyncpg's UUID
    if isinstance(as_int, int):
        return as_int
    try:
        return uuid.UUID(str(run_id)).int
    except ValueError:
        return int.from_bytes(hashlib.blake2b(str(run_id).encode(), digest_size=16).digest(), "big") or 1


def run_span_id(trace: int) -> int:
    """The span id of a run's (never exported) parent span: from its trace id, never 0."""
    return ((trace >> 64) ^ trace) & _MASK64 or 1


def traceparent(trace: int, span_id: int, flags: int = 1) -> str:
    return f"00-{trace:032x}-{span_id:016x}-{flags:02x}"


class Attempt:
    """One attempt, untraced: only its traceparent (the run's trace id, a random span id), made when asked."""

    __slots__ = ("_run_id", "_traceparent")

    def __init__(self, run_id: object) -> None:
        self._run_id = run_id
        self._traceparent: str | None = None

    @property
    def traceparent(self) -> str:
        if self._traceparent is None:
            self._traceparent = traceparent(trace_id(self._run_id), random.getrandbits(64) or 1)
        return self._traceparent

    def end(self, status: str, http_status: int | None = None, error: str | None = None) -> None:
        """Record how the attempt ended (nothing to do untraced)."""


class _TracedAttempt(Attempt):
    __slots__ = ("_span",)

    def __init__(self, run_id: object, span: Any) -> None:
        super().__init__(run_id)
        self._span = span
        ctx = span.get_span_context()
        self._traceparent = traceparent(ctx.trace_id, ctx.span_id, int(ctx.trace_flags) & 0xFF)

    def end(self, status: str, http_status: int | None = None, error: str | None = None) -> None:
        try:
            from opentelemetry.trace import Status, StatusCode

            span = self._span
            span.set_attribute("wf.status", status)
            if http_status is not None:
                span.set_attribute("http.response.status_code", http_status)
            if error is not None:
                span.set_attribute("wf.error", error)
            if status in ("error", "retryable_error"):
                span.set_status(Status(StatusCode.ERROR, error))
            span.end()
        except Exception as exc:  # tracing never breaks a step
            log("tracing_failed", level="warning", error=f"{type(exc).__name__}: {exc}")


class Tracer:
    """Starts attempt spans; off (the default) it only makes traceparent headers."""

    def __init__(self, provider: Any = None) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("wf") if provider is not None else None

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def attempt(self, run_id: object, workflow: str | None, step: str, attempt: int,
                kind: str | None = None) -> Attempt:
        if self._tracer is None:
            return Attempt(run_id)
        try:
            return self._start(run_id, workflow, step, attempt, kind)
        except Exception as exc:  # tracing never breaks a step
            log("tracing_failed", level="warning", error=f"{type(exc).__name__}: {exc}")
            return Attempt(run_id)

    def _start(self, run_id: object, workflow: str | None, step: str, attempt: int,
               kind: str | None) -> Attempt:
        from opentelemetry import trace

        trace_int = trace_id(run_id)
        parent = trace.SpanContext(trace_id=trace_int, span_id=run_span_id(trace_int), is_remote=True,
                                   trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        attributes: dict[str, str | int] = {"wf.run_id": str(run_id), "wf.step": step, "wf.attempt": attempt}
        if workflow is not None:
            attributes["wf.workflow"] = workflow
        if kind is not None:
            attributes["wf.kind"] = kind
        assert self._tracer is not None
        span = self._tracer.start_span(
            f"wf.step {step}", context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
            kind=trace.SpanKind.CLIENT if kind == "function" else trace.SpanKind.INTERNAL, attributes=attributes)
        return _TracedAttempt(run_id, span)

    def shutdown(self) -> None:
        """Flush what is buffered (bounded) and stop the exporter; never raises."""
        if self._provider is None:
            return
        provider, self._provider, self._tracer = self._provider, None, None
        try:
            provider.force_flush(SHUTDOWN_FLUSH_MILLIS)
        except Exception as exc:
            log("tracing_flush_failed", level="warning", error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            provider.shutdown()


def setup() -> Tracer:
    """The worker's Tracer: exporting when the extra is installed and OTEL_* ask for it, else off."""
    if not configured():
        return Tracer()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        log("tracing_unavailable", level="warning", error=str(exc),
            note="OTEL_EXPORTER_OTLP_ENDPOINT is set but the otel extra is missing: pip install 'wf[otel]'")
        return Tracer()
    try:
        resource = Resource.create()
        if str(resource.attributes.get("service.name", "unknown_service")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    except Exception as exc:  # a bad OTEL_* value: run untraced rather than not at all
        log("tracing_unavailable", level="warning", error=f"{type(exc).__name__}: {exc}")
        return Tracer()
    log("tracing_started", service=resource.attributes.get("service.name"),
        endpoint=os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    return Tracer(provider)
