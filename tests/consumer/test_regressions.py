"""Regression tests for consumer bugs, one per bug, each named after it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from wf.calls import Call, Caller, parse_retry_after
from wf.metrics import LastContact, Metrics
from wf.render import build_context, render_payload
from wf.wakeups import Wakeups
from wf.worker import did_something
from wfproc import WF, run_once, wait_final, wait_until
from wfsql import define, enqueue, events, run_status, step_row

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def local_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Starts in-process aiohttp servers on free ports; returns their base URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_bug_redirect_was_followed_to_another_host(local_server):
    """aiohttp follows redirects by default: a function answering 307 made the worker re-POST the signed
    body to any URL it named. Calls go only to WF_FUNCTIONS_URL (README, Definition reference: `function`):
    a 3xx is a final error."""
    hits: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        hits.append(request.method)
        return web.json_response({"success": True, "data": {}})

    other = await local_server(elsewhere)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{other}/steal")

    base = await local_server(redirect)
    async with Caller(f"{base}/functions/v1", "token", None, max_connections=1) as caller:
        outcome = await caller.call(Call("r", "s", 1, "f", "go", {}, 5.0))
    assert hits == []
    assert (outcome.ok, outcome.retryable, outcome.http_status) == (False, False, 307)
    assert outcome.error.startswith("HTTP 307")


def test_bug_huge_retry_after_overflowed_the_report():
    """Retry-After: 99999999999 was passed on as is; wf.fail takes an int4, so the report failed on the
    client side and was retried until the lease ran out. wf.fail waits at most a day anyway."""
    assert parse_retry_after("99999999999") == 86400
    assert parse_retry_after("86401") == 86400
    assert parse_retry_after("120") == 120


@pytest.mark.parametrize(("template", "expected"), [
    ("{{- n -}}", 5),
    ("{{ n -}}", 5),
    ("{{-n}}", 5),
    ("{{+n}}", 5),
    ("{{ -n }}", -5),
    ("{{ n - 1 }}", 4),
])
def test_bug_whitespace_control_in_a_single_expression(template, expected):
    """`{{- n -}}` is valid Jinja but the single-expression shortcut compiled "- n -" (a syntax error),
    and `{{-n}}` rendered as the negation -5."""
    assert render_payload(template, build_context({"input": {"n": 5}}), "s") == expected


def test_bug_nul_in_an_error_or_output_left_the_step_running(db, conn, gateway, start_worker):
    """PostgreSQL text and jsonb cannot hold U+0000. An error text or an output carrying it was rejected by
    wf.fail / wf.complete with a permanent SQLSTATE, the worker dropped the report, and the step stayed
    `running` until its lease ran out, then was called again: now it is a clear, final step error."""
    define(conn, {"name": "nul", "backoff": {"delays": [0]}, "steps": [
        # the function answers 400 with an error text that holds the NUL it was sent
        {"name": "error_with_nul", "function": "misbehave", "action": "bad_request", "on_failure": "continue",
         "payload_template": {"reason": "a{{ '\\x00' }}b"}},
        # echo answers with its payload: an output that holds a NUL
        {"name": "output_with_nul", "function": "echo", "action": "go", "on_failure": "continue",
         "payload_template": {"text": "a{{ '\\x00' }}b"}},
    ]})
    run_id = enqueue(conn, "nul")
    assert wait_final(conn, run_id, 10, start_worker(db)) == {run_id: "completed"}

    failed = step_row(conn, run_id, "error_with_nul")
    assert (failed["status"], failed["attempt"], failed["http_status"]) == ("failed", 1, 400)
    assert failed["error"] == "HTTP 400: bad request: a\ufffdb"
    rejected = step_row(conn, run_id, "output_with_nul")
    assert (rejected["status"], rejected["attempt"]) == ("failed", 1)
    assert rejected["error"].startswith("the database refused the output: ")
    assert not [e for e in events(conn, run_id) if e["kind"] == "attempt_lost"]


def test_bug_new_stage_waited_for_the_ten_second_refresh(db, conn, start_worker):
    """A workflow defined while the worker ran got a new stage that the worker learnt of only at its
    next 10 s refresh, and it ignored the NOTIFY for the unknown queue: the first runs waited."""
    worker = start_worker(db)
    worker.wait_started()
    define(conn, {"name": "late", "steps": [{"name": "a", "function": "echo", "action": "go"}]})
    run_id = enqueue(conn, "late")
    assert wait_final(conn, run_id, 4, worker) == {run_id: "completed"}


def test_bug_worker_once_retried_an_unreachable_database_forever(tmp_path):
    """`wf worker --once` (cron-style) looped on 'database_unreachable' forever; it now exits 1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = subprocess.run(
        [str(WF), "worker", "--once", "--dsn", f"postgresql://postgres@127.0.0.1:{port}/nope",
         "--functions-url", "http://127.0.0.1:9/functions/v1"],
        capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_bug_huge_retry_after_reaches_the_database_capped(db, conn, start_worker):
    """End to end for the Retry-After overflow: the step goes to `retrying` at once, waiting a day."""
    define(conn, {"name": "limited", "steps": [
        {"name": "a", "function": "misbehave", "action": "rate_limited",
         "payload_template": {"key": uuid.uuid4().hex, "times": 1, "retry_after": "99999999999"}}]})
    run_id = enqueue(conn, "limited")
    start_worker(db)
    wait_until(lambda: step_row(conn, run_id, "a")["status"] == "retrying", 5, "the 429 to be reported")
    [retrying] = [e for e in events(conn, run_id) if e["kind"] == "retrying"]
    assert retrying["detail"]["retry_after_seconds"] == 86400




def test_bug_cli_cancel_and_retry_read_the_private_runs_table(conn, login_as):
    """`wf cancel` and `wf retry` read wf.runs for their message: as a wf_admin login (the role the docs
    give them) they failed with "permission denied for table runs". They read wf.runs_overview now."""
    define(conn, {"name": "one", "steps": [{"name": "a", "function": "echo", "action": "go"}]})
    run_id = enqueue(conn, "one")
    admin = login_as("wf_admin")
    env = {"WF_DATABASE_URL": admin}
    retry = subprocess.run([str(WF), "retry", run_id], env=env, capture_output=True, text=True)
    assert retry.returncode == 2
    assert retry.stderr.strip().endswith(f"run {run_id} is pending, not failed: nothing to retry")
    cancel = subprocess.run([str(WF), "cancel", run_id], env=env, capture_output=True, text=True)
    assert (cancel.returncode, cancel.stdout.strip()) == (0, f"run {run_id} cancelled")
    again = subprocess.run([str(WF), "cancel", run_id], env=env, capture_output=True, text=True)
    assert again.returncode == 2
    assert again.stderr.strip().endswith(f"run {run_id} is already cancelled")


def test_bug_worker_could_not_run_as_a_wf_worker_login(conn, gateway, login_as):
    define(conn, {"name": "one", "steps": [{"name": "a", "function": "echo", "action": "go"}]})
    run_id = enqueue(conn, "one")
    result = run_once(login_as("wf_worker"), gateway.url)
    assert result.returncode == 0, result.stderr
    assert run_status(conn, run_id) == "completed"


@pytest.mark.parametrize("group", ["wf_reader", "wf_admin"])
def test_bug_status_of_one_run_failed_for_a_reader(conn, login_as, group):
    define(conn, {"name": "one", "steps": [{"name": "a", "function": "echo", "action": "go"}]})
    run_id = enqueue(conn, "one")
    result = subprocess.run([str(WF), "status", run_id], env={"WF_DATABASE_URL": login_as(group)},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


async def test_bug_notify_for_a_stage_left_out_by_stages_refreshed_the_stage_list_on_every_message():
    """With the refresh-on-unknown-queue fix, a worker started with --stages took the NOTIFY of every
    stage it leaves out for a new stage and re-read wf.stages on each one. Only really new queues count."""

    class Pool:
        async def fetch(self, _query: str) -> list[dict[str, object]]:
            return [{"name": "echo", "queue": "wf_echo", "max_concurrency": None, "queue_length": 0},
                    {"name": "other", "queue": "wf_other", "max_concurrency": None, "queue_length": 0}]

    wakeups = Wakeups("postgresql://unused", ("echo",), Metrics(), LastContact(), asyncio.Event())
    await wakeups.refresh(Pool())  # type: ignore[arg-type]
    for queue in ("wf_other", "wf_dlq", "wf_echo"):
        wakeups.on_notify(None, 0, "wf", queue)
        assert not wakeups.stages_changed.is_set(), queue
    wakeups.on_notify(None, 0, "wf", "wf_brand_new")
    assert wakeups.stages_changed.is_set()


async def test_bug_a_finished_step_woke_the_dispatcher_before_its_slot_was_free():
    # the step's `finally` woke the dispatcher, but its slot was freed later, by the task's done
    # callback: the dispatcher saw no free slot, claimed nothing and slept until the next poll
    from wf.wakeups import Stage
    from wf.worker import Worker, WorkerConfig

    worker = Worker(WorkerConfig(dsn="postgresql://unused", functions_url="http://unused", concurrency=1,
                                 claim_ahead=0))
    stage = worker._wakeups.stages["echo"] = Stage("echo", "wf_echo", None)

    class Steps:
        async def run(self, _stage: str, _row: object) -> None:
            await asyncio.sleep(0)

    class Pool:
        async def fetch(self, _query: str, *_args: object) -> list[dict]:
            return [{"run_id": uuid.uuid4(), "step": "s1", "attempt": 1}]

    worker._steps, worker._pool = Steps(), Pool()
    assert await worker._claim(stage) == 1
    assert worker._free(stage) == 0
    worker._wakeups.wake.clear()
    await worker._wakeups.wake.wait()  # resumes exactly as the dispatcher does when the step ends
    assert worker._free(stage) == 1


async def test_bug_an_unexpected_client_error_from_a_claim_ended_the_worker():
    # after a PostgreSQL restart asyncpg raised InternalClientError ("cannot switch to state 12;
    # another operation is in progress"), which is neither an InterfaceError nor a PostgresError:
    # the dispatcher let it through and the worker exited with 1
    from asyncpg.exceptions._base import InternalClientError
    from wf.wakeups import Stage
    from wf.worker import Worker, WorkerConfig

    worker = Worker(WorkerConfig(dsn="postgresql://unused", functions_url="http://unused", concurrency=1,
                                 claim_ahead=0, poll_interval=0.05))
    worker._wakeups.stages["echo"] = Stage("echo", "wf_echo", None)
    worker._wakeups.ready.add("echo")
    calls = 0

    class Pool:
        async def fetch(self, _query: str, *_args: object) -> list[dict]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise InternalClientError("cannot switch to state 12; another operation (2) is in progress")
            worker._stopping.set()  # the second claim got through: stop the loop
            return []

    worker._pool = Pool()
    worker._sleep = lambda _seconds: asyncio.sleep(0)  # type: ignore[method-assign]
    await asyncio.wait_for(worker._dispatch(), 5)
    assert calls == 2


def test_a_quiet_tick_writes_no_log_line_though_its_alerts_are_an_object():
    """wf.tick's result gained nested alerts ({"open": 0, "started": 0}) and a list of re-created
    queues: the worker logged every quiet tick until it looked inside them."""
    quiet = {"promoted": 0, "stuck": 0, "alerts": {"open": 0, "started": 0}, "recreated_queues": []}
    assert not did_something(quiet)
    assert did_something({**quiet, "alerts": {"open": 1, "started": 0}})
    assert did_something({**quiet, "recreated_queues": ["wf_echo"]})
    assert did_something({**quiet, "deleted_runs": 3})
