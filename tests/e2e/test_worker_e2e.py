"""End to end: the real `wf worker` process, the real Deno functions behind the local gateway,
a real PostgreSQL. Each test defines its workflows before it starts the worker."""

from __future__ import annotations

import asyncio
import email.utils
import json
import socket
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from wf.calls import Call, Caller
from wfproc import SIGNING_SECRET, TOKEN, WRONG_SECRET, run_once, wait_final, wait_until
from wfsql import (
    SEED_INPUT,
    define,
    dlq,
    enqueue,
    events,
    make_visible,
    messages,
    seed_definition,
    step_row,
    step_statuses,
)

NO_WAIT = {"delays": [0]}  # retries become visible at once; the worker's 0.2 s poll picks them up


def one_step(name: str, action: str, payload: dict[str, Any] | None = None, function: str = "misbehave",
             **step: Any) -> dict[str, Any]:
    return {"name": name, "backoff": NO_WAIT,
            "steps": [{"name": "call", "function": function, "action": action, "payload_template": payload or {},
                       **step}]}


def kinds(conn, run_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in events(conn, run_id) if e["kind"] == kind]


# ---- the seed workflow and rendering ---------------------------------------------------------


def test_seed_workflow_completes_and_functions_receive_the_rendered_payloads(db, conn, gateway, start_worker):
    """templates/proposal-created.json verbatim; `messages` and `send-email` are local stand-ins that
    record what they get (supabase/functions/messages, send-email)."""
    define(conn, seed_definition())
    run_id = enqueue(conn, "proposal-created", SEED_INPUT, correlation_id="corr-seed")
    worker = start_worker(db)
    assert wait_final(conn, run_id, worker=worker) == {run_id: "completed"}

    [thread] = gateway.calls("messages", run_id)
    assert thread["action"] == "create_proposal_thread"
    assert thread["payload"] == {"proposalId": "p-1", "guestId": "g-1", "hostId": "h-1", "listingId": "l-1",
                                 "proposalStatus": "pending"}
    assert thread["headers"] == {"x-wf-run": run_id, "x-wf-step": "create_thread", "x-wf-attempt": "1",
                                 "x-correlation-id": "corr-seed", "webhook-id": f"{run_id}:create_thread"}
    [email_call] = gateway.calls("send-email", run_id)
    assert email_call["action"] == "send"
    assert email_call["payload"] == {"template_id": "new_proposal", "recipient_email": "host@example.com",
                                     "variables": {"guest_name": "Grace", "listing_name": "Loft by the river"}}
    assert email_call["headers"]["webhook-id"] == f"{run_id}:notify_host"

    assert step_row(conn, run_id, "create_thread")["output"] == {"action": "create_proposal_thread",
                                                                 "thread_id": "thread-p-1"}
    row = conn.execute("select * from wf.runs_overview where run_id = %s", (run_id,)).fetchone()
    assert (row["progress"], row["attempts"], row["last_error"]) == ("2/2", 2, None)

    # one JSON log line per call: run, step, attempt, status, http status, duration
    calls = [r for r in worker.logs() if r.get("event") == "call" and r["run_id"] == run_id]
    assert sorted(c["step"] for c in calls) == ["create_thread", "notify_host"]
    for c in calls:
        assert (c["attempt"], c["status"], c["http_status"]) == (1, "succeeded", 200)
        assert c["duration_ms"] >= 0


def test_earlier_output_reaches_later_payload_with_its_json_type(db, conn, gateway, start_worker):
    first = {"count": "{{ count }}", "flag": True, "tags": ["a", "b"], "obj": {"k": 1.5}, "nothing": None}
    out = "steps.first.output"
    define(conn, {"name": "typed", "steps": [
        {"name": "first", "function": "echo", "action": "produce", "payload_template": first},
        {"name": "second", "function": "echo", "action": "consume", "payload_template": {
            "count": f"{{{{ {out}.payload.count }}}}",
            "flag": f"{{{{ {out}.payload.flag }}}}",
            "tags": f"{{{{ {out}.payload.tags }}}}",
            "obj": f"{{{{ {out}.payload.obj }}}}",
            "nothing": f"{{{{ {out}.payload.nothing }}}}",
            "attempt": f"{{{{ {out}.attempt }}}}",
            "sum": f"{{{{ {out}.payload.count + 1 }}}}",
            "text": f"count={{{{ {out}.payload.count }}}} in {{{{ run.workflow }}}}",
            "status": "{{ steps.first.status }}",
            "nested": {"list": ["{{ input.count }}", "{{ steps.first.output.payload.tags[1] }}"]},
        }},
        {"name": "only_if_failed", "function": "echo", "action": "never",
         "when": "{{ steps.first.status == 'failed' }}", "depends_on": ["first"]},
    ]})
    run_id = enqueue(conn, "typed", {"count": 7})
    assert wait_final(conn, run_id, worker=start_worker(db)) == {run_id: "completed"}

    calls = {c["headers"]["x-wf-step"]: c for c in gateway.calls("echo", run_id)}
    assert set(calls) == {"first", "second"}  # `when` rendered false: only_if_failed was not called
    assert calls["first"]["payload"] == {"count": 7, "flag": True, "tags": ["a", "b"], "obj": {"k": 1.5},
                                         "nothing": None}
    assert calls["second"]["payload"] == {
        "count": 7, "flag": True, "tags": ["a", "b"], "obj": {"k": 1.5}, "nothing": None, "attempt": 1, "sum": 8,
        "text": "count=7 in typed", "status": "succeeded", "nested": {"list": [7, "b"]},
    }
    assert step_row(conn, run_id, "only_if_failed")["status"] == "skipped"


# ---- every failure class of README, Edge function contract --------------------------------


RETRIED, FINAL = True, False
CASES = [
    # id, definition kwargs, expected run status, attempts, retried?, http status, error fragment
    ("500-twice-then-ok", dict(function="flaky", action="fail_first", payload={"failures": 2, "status": 500},
                               max_retries=3), "completed", 3, RETRIED, 200, None),
    ("500-always", dict(action="status", payload={"status": 500}, max_retries=1), "failed", 2, RETRIED, 500,
     "HTTP 500: status 500"),
    ("503-always", dict(action="status", payload={"status": 503}, max_retries=1), "failed", 2, RETRIED, 503,
     "HTTP 503"),
    ("408-retried", dict(action="status", payload={"status": 408}, max_retries=1), "failed", 2, RETRIED, 408,
     "HTTP 408"),
    ("retryable-then-ok", dict(function="flaky", action="fail_first", payload={"failures": 1, "status": 200},
                               max_retries=3), "completed", 2, RETRIED, 200, None),
    ("retryable-always", dict(action="fail_retryable", max_retries=2), "failed", 3, RETRIED, 200,
     "temporarily unavailable"),
    ("400-not-retried", dict(action="bad_request", max_retries=3), "failed", 1, FINAL, 400,
     "HTTP 400: bad request: rejected on purpose"),
    ("404-not-retried", dict(action="status", payload={"status": 404}, max_retries=3), "failed", 1, FINAL, 404,
     "HTTP 404"),
    ("unknown-function", dict(function="no-such-function", action="go", max_retries=3), "failed", 1, FINAL, 404,
     "function not found: no-such-function"),
    ("success-false-not-retried", dict(action="fail_plain", max_retries=3), "failed", 1, FINAL, 200,
     "business rule violated"),
    ("not-json-not-retried", dict(action="not_json", max_retries=3), "failed", 1, FINAL, 200,
     "breaks the contract"),
    ("no-content-not-retried", dict(action="status", payload={"status": 204}, max_retries=3), "failed", 1, FINAL,
     204, "breaks the contract"),
    ("dropped-connection-retried", dict(action="drop", max_retries=2), "failed", 3, RETRIED, None,
     "connection error"),
    ("timeout-retried", dict(action="slow", payload={"ms": 3000}, timeout_seconds=1, max_retries=1), "failed", 2,
     RETRIED, None, "timeout after 1s"),
    ("oversized-body", dict(action="big", payload={"bytes": 1_100_000}, max_retries=3), "failed", 1, FINAL, 200,
     "response body is over 1048576 bytes"),
]


@pytest.mark.parametrize(("kw", "status", "attempts", "retried", "http_status", "error"),
                         [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_failure_class(run_to_end, conn, kw, status, attempts, retried, http_status, error):
    kw = dict(kw)
    function, action, payload = kw.pop("function", "misbehave"), kw.pop("action"), dict(kw.pop("payload", {}))
    payload["key"] = uuid.uuid4().hex  # flaky counts calls per key
    row = run_to_end(one_step("failing", action, payload, function=function, **kw))
    run_id = str(row["run_id"])

    assert (row["status"], row["attempts"]) == (status, attempts), row
    assert len(kinds(conn, run_id, "started")) == attempts
    assert len(kinds(conn, run_id, "retrying")) == (attempts - 1 if status == "completed" or retried else 0)
    step = step_row(conn, run_id, "call")
    if status == "completed":
        assert step["status"] == "succeeded"
        assert row["last_error"] is None
        return
    # the last attempt failed for good: dead, in the DLQ, and the error is visible in the overview
    assert step["status"] == "dead"
    assert step["http_status"] == http_status
    assert error in row["last_error"], row["last_error"]
    assert row["failed_step"] == "call"
    assert [m["message"]["run_id"] for m in dlq(conn)] == [run_id]
    for retry in kinds(conn, run_id, "retrying"):
        assert retry["detail"].get("http_status") == http_status


def test_failure_with_on_failure_continue_lets_the_run_go_on(run_to_end, conn, gateway):
    definition = one_step("soft", "bad_request", on_failure="continue")
    definition["steps"].append({"name": "after", "function": "echo", "action": "go",
                                "payload_template": {"previous": "{{ steps.call.status }}"}})
    row = run_to_end(definition)
    assert row["status"] == "completed"
    assert "HTTP 400" in row["last_error"]
    [after] = gateway.calls("echo", str(row["run_id"]))
    assert after["payload"] == {"previous": "failed"}


def _http_date(seconds: int) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize("retry_after", ["30", pytest.param("date", id="http-date")])
def test_429_retry_after_is_honoured(db, conn, start_worker, retry_after):
    """The retry waits at least Retry-After (not the 0 s backoff); time is then simulated by back-dating vt."""
    value = _http_date(31) if retry_after == "date" else retry_after
    define(conn, one_step("limited", "rate_limited", {"key": uuid.uuid4().hex, "times": 1, "retry_after": value}))
    run_id = enqueue(conn, "limited")
    worker = start_worker(db)

    wait_until(lambda: step_row(conn, run_id, "call")["status"] == "retrying", what="the 429 to be reported")
    [retrying] = kinds(conn, run_id, "retrying")
    assert retrying["detail"]["http_status"] == 429
    assert retrying["detail"]["retry_after_seconds"] >= 29
    assert retrying["detail"]["delay_seconds"] >= 29
    [msg] = messages(conn, "misbehave")
    assert msg["wait"] >= 28  # invisible until Retry-After has passed
    assert len(kinds(conn, run_id, "started")) == 1

    make_visible(conn, "misbehave")  # 30 seconds later
    assert wait_final(conn, run_id, worker=worker) == {run_id: "completed"}
    assert step_row(conn, run_id, "call")["attempt"] == 2


# ---- signatures ------------------------------------------------------------------------------


def test_signature_verifies_in_the_function_and_webhook_id_is_stable_across_attempts(db, conn, gateway,
                                                                                     start_worker):
    """Attempt 1 is made by the consumer's own Caller and then abandoned (as by a worker that died before
    reporting); the worker's attempt 2 carries the same webhook-id, so a function can drop the duplicate."""
    define(conn, one_step("signed", "sign-me", {"n": 1}, function="echo"))
    run_id = enqueue(conn, "signed")
    [task] = conn.execute("select * from wf.claim('echo', 1)").fetchall()

    async def first_attempt() -> Any:
        async with Caller(gateway.url, TOKEN, SIGNING_SECRET, max_connections=1) as caller:
            return await caller.call(Call(run_id, "call", task["attempt"], "echo", "sign-me", {"n": 1}, 10.0))

    assert asyncio.run(first_attempt()).ok  # the function verified the signature
    make_visible(conn, "echo")  # the lease of the abandoned attempt ran out
    assert wait_final(conn, run_id, worker=start_worker(db)) == {run_id: "completed"}

    calls = gateway.calls("echo", run_id)
    assert [c["headers"]["x-wf-attempt"] for c in calls] == ["1", "2"]
    assert {c["headers"]["webhook-id"] for c in calls} == {f"{run_id}:call"}
    assert step_row(conn, run_id, "call")["output"]["webhook_id"] == f"{run_id}:call"
    assert [e["attempt"] for e in kinds(conn, run_id, "attempt_lost")] == [1]


@pytest.mark.parametrize(("secret", "token", "error"), [
    pytest.param(WRONG_SECRET, TOKEN, "HTTP 401: invalid signature", id="wrong-secret"),
    pytest.param(None, TOKEN, "HTTP 401: invalid signature", id="unsigned"),
    pytest.param(SIGNING_SECRET, "not-the-token", "HTTP 401: unauthorized", id="wrong-token"),
])
def test_wrong_credentials_are_refused_and_not_retried(db, conn, gateway, start_worker, secret, token, error):
    define(conn, one_step("refused", "go", {"n": 1}, function="echo", max_retries=3))
    run_id = enqueue(conn, "refused")
    worker = start_worker(db, secret=secret, token=token)
    assert wait_final(conn, run_id, worker=worker) == {run_id: "failed"}
    step = step_row(conn, run_id, "call")
    assert (step["status"], step["attempt"], step["http_status"]) == ("dead", 1, 401)
    assert step["error"] == error
    assert gateway.calls("echo", run_id) == []  # refused before the function body ran


# ---- per-stage concurrency ----------------------------------------------------------------------


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                   key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    depth = peak = 0
    for _, delta in edges:
        depth += delta
        peak = max(peak, depth)
    return peak


def test_per_stage_concurrency_limit_holds(db, conn, start_worker):
    define(conn, one_step("slow", "slow", {"ms": 300}))
    define(conn, one_step("quick", "go", function="echo"))
    conn.execute("update wf.stages set max_concurrency = 2 where name = 'misbehave'")
    slow = [enqueue(conn, "slow") for _ in range(8)]
    quick = [enqueue(conn, "quick") for _ in range(4)]
    worker = start_worker(db, "--concurrency", "16", "--poll-interval", "0.2")
    assert set(wait_final(conn, slow + quick, worker=worker).values()) == {"completed"}

    timeline = conn.execute("select run_id::text, started_at, finished_at from wf.step_timeline "
                            "where run_id = any(%s::uuid[])", (slow,)).fetchall()
    assert len(timeline) == 8
    assert _max_overlap([(t["started_at"], t["finished_at"]) for t in timeline]) == 2
    # the limit holds back only its own stage: the echo runs did not wait for the slow ones
    last_quick = conn.execute("select max(finished_at) as t from wf.runs where id = any(%s::uuid[])",
                              (quick,)).fetchone()["t"]
    last_slow = max(t["finished_at"] for t in timeline)
    assert last_quick < last_slow


# ---- bad templates ---------------------------------------------------------------------------------


def test_template_with_missing_data_fails_the_step_naming_the_variable_and_the_worker_goes_on(db, conn, gateway,
                                                                                             start_worker):
    define(conn, {"name": "missing-output", "backoff": NO_WAIT, "steps": [
        {"name": "first", "function": "echo", "action": "go"},
        {"name": "second", "function": "echo", "action": "go", "max_retries": 3,
         "payload_template": {"ticket": "{{ steps.first.output.ticket_id }}"}},
    ]})
    # an expression the enqueue check cannot see through: caught only when the step renders
    define(conn, {"name": "missing-input", "backoff": NO_WAIT, "steps": [
        {"name": "greet", "function": "echo", "action": "go", "max_retries": 3,
         "payload_template": {"text": "{{ customer ~ '!' }}"}},
    ]})
    define(conn, one_step("fine", "go", function="echo"))
    bad_output = enqueue(conn, "missing-output")
    bad_input = enqueue(conn, "missing-input")
    worker = start_worker(db)
    assert wait_final(conn, [bad_output, bad_input], worker=worker) == {bad_output: "failed", bad_input: "failed"}

    second = step_row(conn, bad_output, "second")
    assert (second["status"], second["attempt"]) == ("dead", 1)  # not retried
    assert "step second" in second["error"] and "ticket_id" in second["error"], second["error"]
    greet = step_row(conn, bad_input, "greet")
    assert (greet["status"], greet["attempt"]) == ("dead", 1)
    assert "step greet" in greet["error"] and "'customer' is undefined" in greet["error"], greet["error"]
    assert [c["headers"]["x-wf-step"] for c in gateway.calls("echo", bad_output)] == ["first"]
    assert gateway.calls("echo", bad_input) == []

    # the same worker keeps serving
    fine = enqueue(conn, "fine")
    assert wait_final(conn, fine, worker=worker) == {fine: "completed"}
    assert worker.proc.poll() is None


# ---- metrics ---------------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_metrics_and_healthz(db, conn, start_worker):
    define(conn, one_step("measured", "go", function="echo"))
    define(conn, one_step("broken", "bad_request"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = start_worker(db, "--poll-interval", "0.2", "--metrics-port", str(port))
    runs = [enqueue(conn, "measured"), enqueue(conn, "measured"), enqueue(conn, "broken")]
    wait_final(conn, runs, worker=worker)

    status, body = wait_until(lambda: (r := _get(f"http://127.0.0.1:{port}/healthz"))[0] and r, what="/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    _, metrics = _get(f"http://127.0.0.1:{port}/metrics")
    assert 'wf_calls_total{outcome="succeeded",stage="echo"} 2.0' in metrics
    assert 'wf_calls_total{outcome="error",stage="misbehave"} 1.0' in metrics
    assert 'wf_call_duration_seconds_count{stage="echo"} 2.0' in metrics
    assert 'wf_in_flight{stage="echo"} 0.0' in metrics


def test_stages_option_serves_only_the_named_stages_and_warns_about_unknown_ones(conn, db, gateway):
    define(conn, {"name": "two", "steps": [
        {"name": "a", "function": "echo", "action": "go", "depends_on": []},
        {"name": "b", "function": "noop", "action": "go", "depends_on": []}]})
    run_id = enqueue(conn, "two")
    result = run_once(db, gateway.url, "--stages", "echo,nosuch")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert {"event": "unknown_stages", "stages": ["nosuch"]}.items() <= next(
        line for line in lines if line["event"] == "unknown_stages").items()
    assert step_statuses(conn, run_id) == {"a": "succeeded", "b": "queued"}


def test_without_pg_cron_the_worker_runs_the_minute_tick_itself(db, conn, start_worker):
    # the cloned test database has no pg_cron: a due scheduled run is promoted by the worker's tick
    define(conn, one_step("later", "go", function="echo"))
    run_id = enqueue(conn, "later", run_at=datetime.now(UTC) + timedelta(hours=1))
    conn.execute("update wf.runs set run_at = now() - interval '1 minute' where id = %s", (run_id,))
    start_worker(db, "--poll-interval", "0.2")
    wait_until(lambda: any(e["kind"] == "run_due" for e in events(conn, run_id)), what="the tick to promote the run")


def test_a_call_longer_than_the_visibility_timeout_keeps_its_message_by_heartbeat(db, conn, start_worker):
    # an operator lowered the stage's visibility timeout below the call: wf.extend keeps the
    # message invisible, so it is not claimed again while the first attempt still runs
    define(conn, one_step("long", "slow", {"ms": 4500}, timeout_seconds=20))
    conn.execute("update wf.stages set visibility_timeout = 2 where name = 'misbehave'")
    run_id = enqueue(conn, "long")
    worker = start_worker(db, "--poll-interval", "0.2")
    wait_final(conn, run_id, worker=worker)
    assert step_row(conn, run_id, "call")["status"] == "succeeded"
    assert step_row(conn, run_id, "call")["attempt"] == 1
    assert kinds(conn, run_id, "attempt_lost") == [] and kinds(conn, run_id, "stale_answer") == []
