"""The `wf` command line. Exit 0 on success, 2 on bad input or usage (one line, no
traceback), 1 on anything else; a database error's exit status comes from wf.errors' table.
Every option also reads a WF_* environment variable."""

from __future__ import annotations

import asyncio
import os
import signal as os_signal
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import click
import orjson

from wf import db, errors, queries, runlist
from wf.definitions import DefinitionFileError, children_first, load_definition_files

T = TypeVar("T")


class BadInput(click.ClickException):
    exit_code = errors.EXIT_BAD_INPUT


def main() -> None:
    """The console script: click's own errors become one line too (`wf: ...`, exit 2)."""
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _fail("aborted", errors.EXIT_FAILURE)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(f"{exc.format_message()}{hint}", errors.EXIT_BAD_INPUT)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    sys.exit(code if isinstance(code, int) else errors.EXIT_OK)


def _fail(message: str, code: int) -> None:
    click.echo(f"wf: {message}", err=True)
    sys.exit(code)


def _event_loop_run() -> Callable[[Coroutine[Any, Any, T]], T]:
    """uvloop where it is installed (it roughly halves the worker's per-call overhead), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine and turn database errors into the documented exit codes (wf.errors)."""
    try:
        return _event_loop_run()(coro)
    except asyncpg.PostgresError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _fail(message, errors.exit_code(exc.sqlstate))
    except ValueError as exc:  # asyncpg's verdict on a malformed DSN
        _fail(f"--dsn: {exc}", errors.EXIT_BAD_INPUT)
    except (OSError, asyncpg.InterfaceError) as exc:
        _fail(f"cannot reach the database: {exc}", errors.EXIT_FAILURE)
    raise AssertionError("unreachable")


def dsn_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--dsn", envvar=["WF_DATABASE_URL", "DATABASE_URL"], show_envvar=True, required=True,
                        help="PostgreSQL URL (WF_DATABASE_URL, then DATABASE_URL).")(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, envvar="WF_JSON", show_envvar=True,
                        help="Print JSON instead of a table.")(fn)


async def _fetch(dsn: str, query: str, *args: Any) -> list[dict[str, Any]]:
    conn = await db.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


def _cell(value: Any, width: int = 60) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, dict | list):
        text = orjson.dumps(value).decode()
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_rows(rows: list[dict[str, Any]], as_json: bool, columns: list[str] | None = None) -> None:
    if as_json:
        click.echo(orjson.dumps(rows, default=str, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        click.echo("(none)")
        return
    columns = columns or list(rows[0])
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="wf")
def cli() -> None:
    """wf — Postgres-native orchestration of Supabase Edge Functions."""


@cli.command()
@dsn_option
@click.option("--no-cron", is_flag=True, envvar="WF_NO_CRON", show_envvar=True,
              help="Do not create the pg_cron job for wf.tick().")
@click.option("--dry-run", is_flag=True, envvar="WF_DRY_RUN", show_envvar=True,
              help="Print what the install would change, and change nothing.")
def install(dsn: str, no_cron: bool, dry_run: bool) -> None:
    """Install or upgrade wf in one transaction: pgmq, pending migrations, the functions and views
    whose file changed, grants and policies, the pg_cron tick job. Idempotent."""
    from wf.install import InstallError
    from wf.install import install as do_install

    try:
        report = _run(do_install(dsn, cron=not no_cron, dry_run=dry_run))
    except InstallError as exc:
        _fail(str(exc), errors.EXIT_FAILURE)
        return
    warnings = [line for line in report.lines() if line.startswith("warning")]
    if dry_run:
        changes = [line for line in report.lines() if not line.startswith("warning")]
        click.echo("\n".join(changes) if changes else "nothing to do: wf is up to date")
    else:
        click.echo(f"pgmq: {report.pgmq}")
        migrations = report.applied + [f"{name} (recorded: its content was already here)" for name in report.adopted]
        click.echo(f"migrations applied: {', '.join(migrations) if migrations else 'none (up to date)'}")
        routines = f"{len(report.routines)}: {', '.join(report.routines)}" if report.routines else "none (up to date)"
        click.echo(f"functions and views applied: {routines}")
        click.echo(f"wf.tick() job: {report.cron}")
    for line in warnings:
        click.echo(line, err=True)


@cli.command()
@dsn_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def define(dsn: str, paths: tuple[Path, ...]) -> None:
    """Load workflow definitions from JSON files or folders; prints name → version."""
    loaded, problems = load_definition_files(paths)
    loaded = children_first(loaded)

    async def store() -> list[tuple[str, str]]:
        conn = await db.connect(dsn)
        results: list[tuple[str, str]] = []
        try:
            for path, definition in loaded:
                try:
                    version = await conn.fetchval(queries.DEFINE, definition)
                    results.append((definition["name"], f"{version}"))
                except asyncpg.PostgresError as exc:
                    if not errors.bad_input(exc.sqlstate):
                        raise
                    problems.append(DefinitionFileError(path, str(exc)))
        finally:
            await conn.close()
        return results

    for name, version in _run(store()):
        click.echo(f"{name} → {version}")
    for problem in problems:
        click.echo(f"wf: {problem}", err=True)
    if problems:
        sys.exit(errors.EXIT_BAD_INPUT)


def _parse_json(option: str, value: str) -> Any:
    """A JSON option's value, given inline or as @file.json."""
    text = value
    if value.startswith("@"):
        try:
            text = Path(value[1:]).read_text()
        except OSError as exc:
            raise BadInput(f"{option}: cannot read {value[1:]}: {exc.strerror}") from exc
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadInput(f"{option} is not valid JSON: {exc}") from exc


def _parse_input(value: str) -> dict[str, Any]:
    parsed = _parse_json("--input", value)
    if not isinstance(parsed, dict):
        raise BadInput("--input must be a JSON object")
    return parsed


@cli.command()
@dsn_option
@click.argument("workflow")
@click.option("--input", "input_", default="{}", envvar="WF_INPUT", show_envvar=True,
              help="Run input: a JSON object, or @file.json.")
@click.option("--key", envvar="WF_IDEMPOTENCY_KEY", show_envvar=True, help="Idempotency key.")
@click.option("--at", "run_at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
              envvar="WF_RUN_AT", show_envvar=True, help="Start at this ISO time (UTC when no offset).")
@click.option("--correlation-id", envvar="WF_CORRELATION_ID", show_envvar=True, help="Correlation id.")
@click.option("--priority", type=click.IntRange(-100, 100), default=0, show_default=True, envvar="WF_PRIORITY",
              show_envvar=True, help="Steps of higher-priority runs are claimed first (bands: > 0, 0, < 0).")
def enqueue(dsn: str, workflow: str, input_: str, key: str | None, run_at: datetime | None,
            correlation_id: str | None, priority: int) -> None:
    """Start a run of WORKFLOW; prints the run id."""
    payload = _parse_input(input_)
    if run_at is not None and run_at.tzinfo is None:
        from datetime import UTC

        run_at = run_at.replace(tzinfo=UTC)
    rows = _run(_fetch(dsn, queries.ENQUEUE, workflow, payload, key, run_at, correlation_id, priority))
    click.echo(str(rows[0]["id"]))


@cli.command()
@dsn_option
@json_option
@click.argument("run_id", required=False)
@click.option("--limit", default=20, show_default=True, envvar="WF_LIMIT", show_envvar=True,
              help="How many runs the overview shows.")
def status(dsn: str, as_json: bool, run_id: str | None, limit: int) -> None:
    """The runs overview, or one run's steps and events."""
    if run_id is None:
        rows = _run(_fetch(dsn, queries.RUNS_OVERVIEW, limit))
        _print_rows(rows, as_json, ["run_id", "workflow", "version", "status", "progress", "current_steps",
                                    "attempts", "last_error", "created_at", "duration"] if not as_json else None)
        return
    run_uuid = _uuid(run_id)

    async def one_run() -> dict[str, Any]:
        conn = await db.connect(dsn)
        try:
            run = await conn.fetchrow(queries.RUN, run_uuid)
            if run is None:
                raise BadInput(f"unknown run {run_id}")
            steps = await conn.fetch(queries.RUN_ATTEMPTS, run_uuid)
            events = await conn.fetch(queries.RUN_EVENTS, run_uuid)
            return {"run": dict(run), "attempts": [dict(s) for s in steps], "events": [dict(e) for e in events]}
        finally:
            await conn.close()

    story = _run(one_run())
    if as_json:
        click.echo(orjson.dumps(story, default=str, option=orjson.OPT_INDENT_2).decode())
        return
    run = story["run"]
    click.echo(f"run {run['run_id']}  {run['workflow']} v{run['version']}  {run['status']}  {run['progress']}")
    if run["parent_run_id"]:
        click.echo(f"child of run {run['parent_run_id']}")
    if run["current_steps"]:
        click.echo(f"now: {run['current_steps']}")
    if run["last_error"]:
        click.echo(f"last error ({run['failed_step']}): {run['last_error']}")
    if run["output"] is not None:
        click.echo(f"output: {_cell(run['output'], 400)}")
    click.echo("")
    _print_rows(story["attempts"], False, ["step", "attempt", "status", "started_at", "duration", "http_status",
                                           "error"])
    click.echo("")
    _print_rows(story["events"], False)


@cli.command()
@dsn_option
@json_option
@click.option("--status", type=click.Choice(runlist.STATUSES), envvar="WF_STATUS", show_envvar=True,
              help="Only runs in this status.")
@click.option("--workflow", envvar="WF_WORKFLOW", show_envvar=True, help="Only runs of this workflow.")
@click.option("--since", envvar="WF_SINCE", show_envvar=True,
              help="Only runs created at or after this ISO time (2026-12-01, 2026-12-01T10:00; UTC when no offset).")
@click.option("--until", envvar="WF_UNTIL", show_envvar=True, help="Only runs created before this ISO time.")
@click.option("--correlation-id", envvar="WF_CORRELATION_ID", show_envvar=True,
              help="Only runs with this correlation id.")
@click.option("--search", envvar="WF_SEARCH", show_envvar=True,
              help=f"Only runs whose input contains this text (case-insensitive; among the newest "
                   f"{runlist.SEARCH_WINDOW:,} runs the other filters select).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000), envvar="WF_LIMIT",
              show_envvar=True, help="How many runs at most, newest first.")
def runs(dsn: str, as_json: bool, status: str | None, workflow: str | None, since: str | None, until: str | None,
         correlation_id: str | None, search: str | None, limit: int) -> None:
    """Runs filtered by status, workflow, time, correlation id and a text in the input, newest first
    (the dashboard's Runs page, as a table)."""
    args = {"status": status, "workflow": workflow, "from": since, "to": until, "correlation_id": correlation_id,
            "q": search, "limit": str(limit)}
    try:
        run_filter = runlist.parse_filter({k: v for k, v in args.items() if v is not None})
    except runlist.FilterError as exc:
        option = {"from": "since", "to": "until", "q": "search"}.get(exc.field, exc.field).replace("_", "-")
        raise BadInput(f"--{option}: {str(exc).split(': ', 1)[1]}") from exc

    async def fetch() -> list[dict[str, Any]]:
        conn = await db.connect(dsn)
        try:
            return (await runlist.page(conn, run_filter)).rows
        finally:
            await conn.close()

    rows = _run(fetch())
    _print_rows(rows, as_json, ["run_id", "workflow", "version", "status", "progress", "current_steps", "attempts",
                                "last_error", "correlation_id", "created_at"] if not as_json else None)


@cli.command()
@dsn_option
@json_option
@click.argument("name", required=False)
def workflows(dsn: str, as_json: bool, name: str | None) -> None:
    """Every workflow with its current version, or the versions of NAME."""
    if name is None:
        _print_rows(_run(_fetch(dsn, queries.WORKFLOWS)), as_json)
        return
    rows = _run(_fetch(dsn, queries.WORKFLOW_VERSIONS, name))
    if not rows:
        raise BadInput(f"unknown workflow {name}")
    _print_rows(rows, as_json)


@cli.command("diff")
@dsn_option
@click.argument("name")
@click.argument("v1", type=click.IntRange(1))
@click.argument("v2", type=click.IntRange(1))
def diff_versions(dsn: str, name: str, v1: int, v2: int) -> None:
    """What changed in workflow NAME from version V1 to V2."""
    from wf.diff import diff

    async def both() -> list[Any]:
        conn = await db.connect(dsn)
        try:
            return [await conn.fetchval(queries.WORKFLOW_DEFINITION, name, v) for v in (v1, v2)]
        finally:
            await conn.close()

    old, new = _run(both())
    for version, definition in ((v1, old), (v2, new)):
        if definition is None:
            raise BadInput(f"workflow {name} has no version {version}")
    click.echo("\n".join(diff(name, v1, old, v2, new)))


def _uuid(value: str) -> Any:
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise BadInput(f"not a run id (a UUID): {value}") from exc


@cli.command()
@dsn_option
@json_option
def stages(dsn: str, as_json: bool) -> None:
    """Stage health: queue depth, in flight, recent successes and failures, latency."""
    _print_rows(_run(_fetch(dsn, queries.STAGE_HEALTH)), as_json)


@cli.command()
@dsn_option
@json_option
def dlq(dsn: str, as_json: bool) -> None:
    """Dead letters: steps that failed for good, with the run to retry."""
    _print_rows(_run(_fetch(dsn, queries.DEAD_LETTERS)), as_json)


@cli.command()
@dsn_option
@click.argument("run_id")
def retry(dsn: str, run_id: str) -> None:
    """Resume a failed run at its dead and failed steps."""
    rows = _run(_fetch(dsn, queries.RETRY, _uuid(run_id)))
    if not rows[0]["ok"]:
        raise BadInput(f"run {run_id} is {rows[0]['status']}, not failed: nothing to retry")
    click.echo(f"run {run_id} resumed")


@cli.command()
@dsn_option
@click.argument("run_id")
def pause(dsn: str, run_id: str) -> None:
    """Pause a run: nothing new starts; calls in flight finish and are recorded."""
    rows = _run(_fetch(dsn, queries.PAUSE, _uuid(run_id)))
    if not rows[0]["ok"]:
        raise BadInput(f"run {run_id} is {rows[0]['status']}: only a scheduled, pending or running run pauses")
    click.echo(f"run {run_id} paused")


@cli.command()
@dsn_option
@click.argument("run_id")
def resume(dsn: str, run_id: str) -> None:
    """Resume a paused run: what became ready meanwhile starts now."""
    rows = _run(_fetch(dsn, queries.RESUME, _uuid(run_id)))
    if not rows[0]["ok"]:
        raise BadInput(f"run {run_id} is {rows[0]['status']}, not paused")
    [now] = _run(_fetch(dsn, queries.RUN_STATUS, _uuid(run_id)))
    click.echo(f"run {run_id} resumed ({now['status']})")


@cli.group()
def stage() -> None:
    """Pause or resume a stage (an edge function) for every worker."""


@stage.command("pause")
@dsn_option
@click.argument("function")
def stage_pause(dsn: str, function: str) -> None:
    """No worker claims from FUNCTION's queue until it is resumed; its messages wait."""
    rows = _run(_fetch(dsn, queries.PAUSE_STAGE, function))
    click.echo(f"stage {function} paused" if rows[0]["ok"] else f"stage {function} was paused already")


@stage.command("configure")
@dsn_option
@click.argument("function")
@click.option("--max-concurrency", type=click.IntRange(1), envvar="WF_STAGE_MAX_CONCURRENCY", show_envvar=True,
              help="Calls in flight at most, over all workers together.")
@click.option("--rate", "rate_per_second", type=float, envvar="WF_STAGE_RATE", show_envvar=True,
              help="Calls started per second at most, over all workers together.")
@click.option("--burst", type=click.IntRange(1), envvar="WF_STAGE_BURST", show_envvar=True,
              help="Calls that may start at once above the rate (default: one second's worth).")
def stage_configure(dsn: str, function: str, max_concurrency: int | None, rate_per_second: float | None,
                    burst: int | None) -> None:
    """Set FUNCTION's limits across every worker (an option left out clears that limit)."""
    from decimal import Decimal

    rate = None if rate_per_second is None else Decimal(str(rate_per_second))
    _run(_fetch(dsn, queries.CONFIGURE_STAGE, function, max_concurrency, rate, burst))
    [row] = _run(_fetch(dsn, queries.STAGE, function))
    limits = {k: row[k] for k in ("max_concurrency", "rate_per_second", "burst")}
    shown = ", ".join(f"{k}={v}" for k, v in limits.items() if v is not None) or "no limits"
    click.echo(f"stage {function}: {shown}")


@stage.command("resume")
@dsn_option
@click.argument("function")
def stage_resume(dsn: str, function: str) -> None:
    """Workers claim from FUNCTION's queue again."""
    rows = _run(_fetch(dsn, queries.RESUME_STAGE, function))
    click.echo(f"stage {function} resumed" if rows[0]["ok"] else f"stage {function} was not paused")


@cli.command()
@dsn_option
@click.argument("run_id")
@click.argument("name")
@click.option("--payload", default="{}", envvar="WF_SIGNAL_PAYLOAD", show_envvar=True,
              help="The signal's payload (the waiting step's output): JSON, or @file.json.")
def signal(dsn: str, run_id: str, name: str, payload: str) -> None:
    """Send signal NAME to a run: the step waiting for it goes on (or it is kept until one waits)."""
    value = _parse_json("--payload", payload)
    rows = _run(_fetch(dsn, queries.SIGNAL, _uuid(run_id), name, value))
    if not rows[0]["ok"]:
        raise BadInput(f"run {run_id} is already {rows[0]['status']}: the signal was not kept")
    click.echo(f"signal {name} sent to run {run_id}")


@cli.command()
@dsn_option
@click.argument("run_id")
@click.option("--reason", envvar="WF_CANCEL_REASON", show_envvar=True, help="Why (kept in the run's history).")
def cancel(dsn: str, run_id: str, reason: str | None) -> None:
    """Cancel a run; answers still in flight become no-ops."""
    rows = _run(_fetch(dsn, queries.CANCEL, _uuid(run_id), reason))
    if not rows[0]["ok"]:
        raise BadInput(f"run {run_id} is already {rows[0]['status']}")
    click.echo(f"run {run_id} cancelled")


@cli.command()
@dsn_option
@click.option("--concurrency", default=16, show_default=True, envvar="WF_CONCURRENCY", show_envvar=True,
              type=click.IntRange(1, 2000), help="Calls in flight at most, over all stages.")
@click.option("--stages", "stage_list", default="", envvar="WF_STAGES", show_envvar=True,
              help="Comma-separated stages (function names) to serve; all when empty.")
@click.option("--claim-ahead", type=click.IntRange(0, 1000), envvar="WF_CLAIM_AHEAD", show_envvar=True,
              help="Steps claimed beyond the free slots, started the moment a slot frees, so calls in "
                   "flight stay at --concurrency while work is queued. Default: the concurrency.")
@click.option("--once", is_flag=True, envvar="WF_ONCE", show_envvar=True,
              help="Drain what is ready now, then exit.")
@click.option("--grace", default=30.0, show_default=True, envvar="WF_GRACE", show_envvar=True,
              type=click.FloatRange(0), help="Seconds in-flight calls get to finish after SIGTERM/SIGINT.")
@click.option("--metrics-port", type=click.IntRange(1, 65535), envvar="WF_METRICS_PORT", show_envvar=True,
              help="Serve /metrics and /healthz on this port.")
@click.option("--poll-interval", default=1.0, show_default=True, envvar="WF_POLL_INTERVAL", show_envvar=True,
              type=click.FloatRange(0.05, 60), help="Seconds between polls (LISTEN wakes the worker sooner).")
@click.option("--functions-url", envvar="WF_FUNCTIONS_URL", show_envvar=True, required=True,
              help="Base URL of the edge functions, e.g. https://<ref>.supabase.co/functions/v1")
def worker(dsn: str, concurrency: int, stage_list: str, claim_ahead: int | None, once: bool, grace: float,
           metrics_port: int | None, poll_interval: float, functions_url: str) -> None:
    """Run the consumer. Secrets come from the environment, never from options: WF_FUNCTIONS_TOKEN
    (bearer token) and WF_SIGNING_SECRET (Standard Webhooks signing secret, optional), or their
    names in Supabase Vault instead, WF_FUNCTIONS_TOKEN_SECRET and WF_SIGNING_SECRET_SECRET: read
    from vault.decrypted_secrets at start and again on SIGHUP (rotation without a restart)."""
    from wf.secrets import SecretError, SecretSources

    try:
        sources = SecretSources.from_env(os.environ)
    except SecretError as exc:
        raise BadInput(str(exc)) from exc
    # a stop asked for while the worker still starts up is honoured once it runs; a SIGHUP then is
    # moot (the Vault secrets are read after the loop's own handler is in place)
    stop_signals: list[int] = []
    for sig in (os_signal.SIGTERM, os_signal.SIGINT):
        os_signal.signal(sig, lambda signum, _frame: stop_signals.append(signum))
    if sources.vault_names:
        os_signal.signal(os_signal.SIGHUP, lambda _signum, _frame: None)
    from wf.logs import route_library_logs
    from wf.worker import WorkerConfig, run_worker

    route_library_logs()
    if not functions_url.startswith(("http://", "https://")):
        raise BadInput(f"--functions-url must be an http(s) URL, got {functions_url}")
    if not sources.vault_names:
        try:
            sources.from_environment()
        except SecretError as exc:
            raise BadInput(str(exc)) from exc
    config = WorkerConfig(
        dsn=dsn,
        functions_url=functions_url,
        secret_sources=sources,
        concurrency=concurrency,
        claim_ahead=claim_ahead,
        stages=tuple(s.strip() for s in stage_list.split(",") if s.strip()),
        once=once,
        grace=grace,
        metrics_port=metrics_port,
        poll_interval=poll_interval,
        stop_requested=lambda: bool(stop_signals),
    )
    try:
        code = _run(run_worker(config))
    except SecretError as exc:  # a Vault secret missing or empty at start: refuse to start, naming it
        raise BadInput(str(exc)) from exc
    sys.exit(code)


@cli.command("import-legacy")
@dsn_option
@json_option
@click.option("--schema", default="public", show_default=True, envvar="WF_LEGACY_SCHEMA", show_envvar=True,
              help="The schema of the workflow_definitions and workflow_executions tables.")
def import_legacy(dsn: str, as_json: bool, schema: str) -> None:
    """Define every workflow_definitions row in wf (the seed format, as it is; wf's active flag follows
    the row's) and print a SQL script that re-enqueues the workflow_executions still pending or running,
    keyed by their correlation_id (run it twice: one run each). A row wf refuses is named, the others
    are imported (exit 2)."""
    from wf.legacy import LegacyError
    from wf.legacy import import_legacy as do_import

    async def run() -> Any:
        conn = await db.connect(dsn)
        try:
            return await do_import(conn, schema)
        finally:
            await conn.close()

    try:
        report = _run(run())
    except LegacyError as exc:
        raise BadInput(str(exc)) from exc
    if as_json:
        click.echo(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo("\n".join(report.script()))
    for problem in report.problems:
        click.echo(f"wf: {problem}", err=True)
    if report.problems:
        sys.exit(errors.EXIT_BAD_INPUT)


@cli.command("gen-types")
@dsn_option
@click.option("--lang", type=click.Choice(["ts", "py"]), required=True, envvar="WF_GEN_TYPES_LANG", show_envvar=True,
              help="TypeScript (Deno, browsers, Node) or Python (TypedDicts and typed overloads).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), envvar="WF_GEN_TYPES_OUT",
              show_envvar=True, help="Write the module to this file (default: stdout).")
def gen_types(dsn: str, lang: str, out: Path | None) -> None:
    """Types for every active workflow's input and a start helper keyed by workflow name, for the
    `workflows` HTTP API (and supabase.rpc in TypeScript): a wrong name or field fails to type-check."""
    from wf.gentypes import generate

    rows = _run(_fetch(dsn, queries.GEN_TYPES_WORKFLOWS))
    text = generate(lang, rows)
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text)
    except OSError as exc:
        raise BadInput(f"--out: cannot write {out}: {exc.strerror}") from exc
    click.echo(f"{out}: types for {len(rows)} active workflow(s)", err=True)


@cli.command()
@dsn_option
@click.option("--host", default="127.0.0.1", show_default=True, envvar="WF_DASHBOARD_HOST", show_envvar=True,
              help="Address to listen on (127.0.0.1: this machine only; put a proxy with sign-in in front "
                   "before opening it wider, README: Dashboard).")
@click.option("--port", default=8040, show_default=True, type=click.IntRange(1, 65535), envvar="WF_DASHBOARD_PORT",
              show_envvar=True, help="Port to listen on.")
def dashboard(dsn: str, host: str, port: int) -> None:
    """The web dashboard: runs, a run's graph and timeline, stages, dead letters, workflows. Read-only
    unless WF_DASHBOARD_TOKEN is set (then actions after signing in with it, if the login may act)."""
    from wf.dashboard.auth import Auth
    from wf.dashboard.server import serve

    token = os.environ.get("WF_DASHBOARD_TOKEN") or None
    try:
        Auth(token)
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    serve(dsn, host, port, token)
