"""The pages that act: a run's cancel, retry, pause, resume and signal; bulk retry or cancel of what a runs
filter selects (after a confirmation naming the count); a stage's pause and resume; sign in and out.

Every POST passes Auth.check_action (token configured, signed in, same origin, CSRF token) and then the
login's own privileges in the database: a wf_reader login is refused there. Each action is wf's own
function in its own transaction; its refusal (a run in the wrong state, …) is shown, never a 500.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import asyncpg
import orjson
from aiohttp import web

from wf import errors, queries, runlist
from wf.dashboard.app import STATE, connection, flash, render
from wf.dashboard.auth import COOKIE, Refused

BULK_MAX = 1000  # runs one bulk action touches at most
SIGNAL_MAX_BYTES = 65536


async def _form(request: web.Request) -> dict[str, str]:
    state = request.app[STATE]
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    state.auth.check_action(request, form)
    return form


def _back(path: str, message: str) -> web.HTTPSeeOther:
    """Back to the page the action came from, with what happened as its flash message."""
    response = web.HTTPSeeOther(location=path)
    flash(response, message)
    return response


async def _act(conn: asyncpg.Connection, query: str, *args: Any) -> asyncpg.Record | str:
    """One action in its own transaction: its row, or the reason wf refused it (the caller's mistake by
    wf's SQLSTATE table, e.g. a run in the wrong state). A login that may only read is refused (403)."""
    try:
        row = await conn.fetchrow(query, *args)
    except asyncpg.InsufficientPrivilegeError:
        raise Refused("this database login may only read (wf_reader): actions need wf_admin") from None
    except asyncpg.PostgresError as exc:
        if not errors.bad_input(exc.sqlstate):
            raise
        return str(exc).splitlines()[0]
    assert row is not None
    return row


async def run_action(request: web.Request) -> web.Response:
    form = await _form(request)
    action = request.match_info["action"]
    try:
        run_id = uuid.UUID(request.match_info["run_id"])
    except ValueError:
        raise web.HTTPNotFound(text=f"no run {request.match_info['run_id'][:80]}") from None
    args: tuple[Any, ...]
    if action == "cancel":
        query, args = queries.CANCEL, (run_id, (form.get("reason") or "cancelled from the dashboard")[:500])
    elif action == "retry":
        query, args = queries.RETRY, (run_id,)
    elif action == "pause":
        query, args = queries.PAUSE, (run_id,)
    elif action == "resume":
        query, args = queries.RESUME, (run_id,)
    elif action == "signal":
        name = form.get("name", "").strip()
        if not name:
            raise runlist.FilterError("name", "the signal's name is required")
        text = form.get("payload", "").strip() or "{}"
        if len(text.encode()) > SIGNAL_MAX_BYTES:
            raise runlist.FilterError("payload", f"larger than {SIGNAL_MAX_BYTES} bytes")
        try:
            payload = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise runlist.FilterError("payload", f"not JSON: {exc}") from None
        query, args = queries.SIGNAL, (run_id, name[:200], payload)
    else:
        raise web.HTTPNotFound(text=f"no action {action[:40]}")
    async with connection(request) as conn:
        row = await _act(conn, query, *args)
        if isinstance(row, str):
            message = row
        else:
            status = await conn.fetchval(queries.RUN_STATUS, run_id)  # after the action (the row's is before)
            done = {"cancel": "cancelled", "retry": "retried", "pause": "paused", "resume": "resumed",
                    "signal": f"signal {args[1] if action == 'signal' else ''} sent"}[action]
            message = f"{done}: the run is {status}" if row["ok"] else f"not {done}: the run is {status}"
    raise _back(f"/runs/{run_id}", message)


def _bulk_filter(args: dict[str, str]) -> tuple[str, runlist.RunFilter]:
    action = args.get("action", "")
    f = runlist.parse_filter({k: v for k, v in args.items() if k in ("status", "workflow", "from", "to",
                                                                     "correlation_id", "q")})
    if action == "retry" and f.status not in ("failed", "compensation_failed"):
        raise runlist.FilterError("status", "bulk retry takes failed or compensation_failed runs: filter by one")
    if action == "cancel" and f.status not in runlist.OPEN_STATUSES:
        raise runlist.FilterError("status", f"bulk cancel takes open runs: filter by one of {runlist.OPEN_STATUSES}")
    if action not in ("retry", "cancel"):
        raise runlist.FilterError("action", "retry or cancel")
    return action, replace(f, limit=BULK_MAX)


async def _selected(request: web.Request, f: runlist.RunFilter) -> list[uuid.UUID]:
    async with connection(request) as conn:
        page = await runlist.page(conn, f)
    return [r["run_id"] for r in page.rows]


async def bulk_confirm(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not state.auth.enabled:
        raise Refused("this dashboard is read-only: start it with WF_DASHBOARD_TOKEN set to act")
    action, f = _bulk_filter(dict(request.query))
    ids = await _selected(request, f)
    return render(request, "confirm.html", action=action, count=len(ids), args=f.query_args(), bulk_max=BULK_MAX)


async def bulk(request: web.Request) -> web.Response:
    form = await _form(request)
    action, f = _bulk_filter(form)
    ids = await _selected(request, f)
    if str(len(ids)) != form.get("expected"):
        # the selection changed since the confirmation: confirm the new count
        return render(request, "confirm.html", action=action, count=len(ids), args=f.query_args(), bulk_max=BULK_MAX,
                      changed=True)
    done, refused, first_error = 0, 0, None
    async with connection(request) as conn:
        for run_id in ids:
            row = await (_act(conn, queries.RETRY, run_id) if action == "retry"
                         else _act(conn, queries.CANCEL, run_id, "cancelled in bulk from the dashboard"))
            if isinstance(row, str):
                first_error = first_error or row
            if not isinstance(row, str) and row["ok"]:
                done += 1
            else:
                refused += 1
    verb = "retried" if action == "retry" else "cancelled"
    message = f"{verb} {done} of {len(ids)} runs" + (f"; {refused} refused" if refused else "")
    if first_error:
        message += f" (first: {first_error})"
    raise _back("/runs?" + urlencode(f.query_args()), message)


async def stage_action(request: web.Request) -> web.Response:
    await _form(request)
    stage, action = request.match_info["stage"], request.match_info["action"]
    if action not in ("pause", "resume"):
        raise web.HTTPNotFound(text=f"no action {action[:40]}")
    async with connection(request) as conn:
        row = await _act(conn, queries.PAUSE_STAGE if action == "pause" else queries.RESUME_STAGE, stage)
    if isinstance(row, str):
        raise _back("/stages", row)
    raise _back("/stages", f"stage {stage} {'paused' if action == 'pause' else 'resumed'}" if row["ok"]
                else f"stage {stage} already was {'paused' if action == 'pause' else 'running'}")


async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", next=_local(request.query.get("next", "/runs")), wrong=False)


def _local(path: str) -> str:
    """Only a path on this site (never //host or a scheme) is followed after signing in."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/runs"


async def login(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await request.post()
    typed = form.get("token")
    if not state.auth.enabled:
        raise Refused("this dashboard is read-only: start it with WF_DASHBOARD_TOKEN set to act")
    if not isinstance(typed, str) or not state.auth.token_matches(typed):
        return render(request, "login.html", next=_local(str(form.get("next", "/runs"))), wrong=True, status=403)
    response = web.HTTPSeeOther(location=_local(str(form.get("next", "/runs"))))
    response.set_cookie(COOKIE, state.auth.new_session(), httponly=True, samesite="Strict", path="/",
                        secure=request.secure)
    raise response


async def logout(request: web.Request) -> web.Response:
    await _form(request)
    response = web.HTTPSeeOther(location="/runs")
    response.del_cookie(COOKIE, path="/")
    raise response
