"""Tracing (DESIGN §12, consumer/wf/tracing.py): the real `wf worker` exports one trace per run to an
OTLP/HTTP receiver started here, and sends the W3C traceparent header to the functions."""

from __future__ import annotations

import gzip
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from wf import tracing
from wf.calls import Call, Caller
from wfproc import wait_final, wait_until
from wfsql import define, enqueue

NO_WAIT = {"delays": [0]}


# ---- a tiny OTLP/HTTP receiver -------------------------------------------------------------------


class Receiver:
    """POST /v1/traces on 127.0.0.1: keeps every span it is sent, decoded from protobuf."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.spans: list[Any] = []
        self.resources: list[dict[str, Any]] = []
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest.FromString(body)
                with lock:
                    for resource_spans in request.resource_spans:
                        receiver.resources.append(attributes(resource_spans.resource.attributes))
                        for scope_spans in resource_spans.scope_spans:
                            receiver.spans.extend(scope_spans.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="otlp-receiver").start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attributes(kvs: Any) -> dict[str, Any]:
    """OTLP KeyValues as a dict (string, int, bool and double values)."""
    out: dict[str, Any] = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed (pip install 'wf[otel]')")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                        reason="the otel extra is not installed (pip install 'wf[otel]')")
    pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2",
                        reason="opentelemetry-proto (a dependency of the otel extra) is not installed")
    r = Receiver()
    yield r
    r.close()


def parse_traceparent(value: str) -> tuple[int, int, str]:
    version, trace_hex, span_hex, flags = value.split("-")
    assert (version, len(trace_hex), len(span_hex), len(flags)) == ("00", 32, 16, 2), value
    return int(trace_hex, 16), int(span_hex, 16), flags


# ---- end to end ------------------------------------------------------------------------------------


def test_one_trace_per_run_a_span_per_attempt_and_the_function_gets_the_attempts_traceparent(
        db, conn, gateway, start_worker, receiver, monkeypatch):
    define(conn, {"name": "traced", "backoff": NO_WAIT, "steps": [
        {"name": "first", "function": "echo", "action": "one", "payload_template": {"n": 1}},
        {"name": "second", "function": "echo", "action": "two", "payload_template": {"n": 2},
         "depends_on": ["first"]},
        {"name": "shaky", "function": "flaky", "action": "fail_first", "max_retries": 2,
         "payload_template": {"key": "{{ run.id }}", "failures": 1, "status": 503}},
    ]})
    run_id = enqueue(conn, "traced", {})
    # the worker process inherits the environment (tests/wfproc.py WorkerProcess); the gateway is started
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "wf-test-worker")
    worker = start_worker(db)
    assert wait_final(conn, run_id, worker=worker) == {run_id: "completed"}
    assert any(r.get("event") == "tracing_started" for r in worker.logs()), worker.tail()

    run_trace = uuid.UUID(run_id).int
    wait_until(lambda: len(receiver.spans) >= 4, 10, "4 spans at the OTLP receiver", worker.tail)
    assert worker.stop() == 0
    spans = {(attributes(s.attributes)["wf.step"], attributes(s.attributes)["wf.attempt"]): s
             for s in receiver.spans}
    assert sorted(spans) == [("first", 1), ("second", 1), ("shaky", 1), ("shaky", 2)]
    assert len(receiver.spans) == 4  # one span per attempt, none twice
    assert {r.get("service.name") for r in receiver.resources} == {"wf-test-worker"}

    parents = set()
    for (step, attempt), span in spans.items():
        attrs = attributes(span.attributes)
        assert int.from_bytes(span.trace_id, "big") == run_trace  # the trace id IS the run id
        assert span.name == f"wf.step {step}"
        assert (attrs["wf.run_id"], attrs["wf.workflow"], attrs["wf.kind"]) == (run_id, "traced", "function")
        parents.add(span.parent_span_id)
        if (step, attempt) == ("shaky", 1):
            assert (attrs["wf.status"], attrs["http.response.status_code"]) == ("retryable_error", 503)
            assert "flaky failure 1 of 1" in attrs["wf.error"]
            assert span.status.code == span.status.STATUS_CODE_ERROR
        else:
            assert (attrs["wf.status"], attrs["http.response.status_code"]) == ("succeeded", 200)
            assert "wf.error" not in attrs
            assert span.status.code != span.status.STATUS_CODE_ERROR
    # every attempt hangs under the same (never exported) run parent
    assert len(parents) == 1 and parents != {b""}

    calls = {c["headers"]["x-wf-step"]: c for c in gateway.calls("echo", run_id)}
    assert set(calls) == {"first", "second"}
    for step, call in calls.items():
        trace_int, span_id, flags = parse_traceparent(call["headers"]["traceparent"])
        assert trace_int == run_trace
        assert span_id == int.from_bytes(spans[(step, 1)].span_id, "big")  # the function's parent: the attempt
        assert flags == "01"


def test_an_unreachable_collector_never_stops_the_calls(db, conn, gateway, start_worker, receiver, monkeypatch):
    define(conn, {"name": "traced_nowhere", "steps": [{"name": "only", "function": "echo", "action": "go"}]})
    run_id = enqueue(conn, "traced_nowhere", {})
    port = receiver.server.server_address[1]
    receiver.close()  # nothing listens there any more
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    worker = start_worker(db)
    assert wait_final(conn, run_id, worker=worker) == {run_id: "completed"}
    assert worker.stop() == 0


# ---- off by default ----------------------------------------------------------------------------------


OTEL_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER",
             "OTEL_SDK_DISABLED")


def test_without_otel_variables_tracing_is_off_and_no_exporter_is_made(monkeypatch):
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    made = []
    try:
        from opentelemetry.exporter.otlp.proto.http import trace_exporter
    except ImportError:
        pass
    else:
        monkeypatch.setattr(trace_exporter, "OTLPSpanExporter", lambda *a, **k: made.append(1))
    tracer = tracing.setup()
    assert not tracer.enabled and made == []
    attempt = tracer.attempt(uuid.UUID(int=7), "wf", "step", 1, "function")
    attempt.end("error", 500, "boom")  # nothing to record
    tracer.shutdown()


@pytest.mark.parametrize(("env", "on"), [
    ({}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_tracing_is_configured_only_by_an_otlp_endpoint(env, on):
    assert tracing.configured(env) is on


def test_untraced_calls_still_carry_a_traceparent_whose_trace_id_is_the_run_id():
    run_id = "0b8e0d9e-1111-4222-8333-444455556666"
    caller = Caller("http://functions", None, None, max_connections=1)
    first = caller.headers(Call(run_id, "s", 1, "f", "a", {}, 1.0), b"{}")["traceparent"]
    second = caller.headers(Call(run_id, "s", 2, "f", "a", {}, 1.0), b"{}")["traceparent"]
    (t1, s1, f1), (t2, s2, _) = parse_traceparent(first), parse_traceparent(second)
    assert t1 == t2 == uuid.UUID(run_id).int and f1 == "01"
    assert s1 != s2 and 0 not in (s1, s2)  # a fresh span id per attempt
    given = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    assert caller.headers(Call(run_id, "s", 1, "f", "a", {}, 1.0, traceparent=given), b"{}")["traceparent"] == given
