"""The pages that read: runs, a run, stages, dead letters, workflows (and a diff of two versions)."""

from __future__ import annotations

import difflib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from wf import queries, runlist
from wf.dashboard import views
from wf.dashboard.app import STATE, connection, render
from wf.diff import diff

EVENTS_SHOWN = 1000
DEAD_LETTERS_PAGE = 50


def _run_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["run_id"])
    except ValueError:
        raise web.HTTPNotFound(text=f"no run {request.match_info['run_id'][:80]}") from None


async def runs(request: web.Request) -> web.Response:
    f = runlist.parse_filter(dict(request.query))
    async with connection(request) as conn:
        page = await runlist.page(conn, f)
        counts = await runlist.counts(conn, f)
    args = f.query_args()
    next_args = {**args, "before": page.next_cursor} if page.next_cursor else None
    return render(request, "runs.html", page=page, counts=counts, filter=f, args=args, next_args=next_args,
                  statuses=runlist.STATUSES, count_cap=runlist.COUNT_CAP, search_window=runlist.SEARCH_WINDOW,
                  search_max=runlist.SEARCH_MAX_CHARS, bulk=_bulk_actions(f))


def _bulk_actions(f: runlist.RunFilter) -> list[str]:
    """The bulk actions a filter's status allows: retry failed runs, cancel open ones."""
    if f.status in ("failed", "compensation_failed"):
        return ["retry"]
    if f.status in runlist.OPEN_STATUSES:
        return ["cancel"]
    return []


async def run(request: web.Request) -> web.Response:
    run_id = _run_id(request)
    async with connection(request) as conn:
        overview = await conn.fetchrow(queries.RUN, run_id)
        if overview is None:
            raise web.HTTPNotFound(text=f"no run {run_id}")
        identity = await conn.fetchrow(queries.RUN_INPUT, run_id)
        # a compensation that has not started is a possibility, not a step of this run (yet): left out
        steps = [dict(r) for r in await conn.fetch(queries.RUN_STEPS, run_id)
                 if not (r["compensates"] is not None and r["status"] == "waiting")]
        attempts = [dict(r) for r in await conn.fetch(queries.RUN_ATTEMPTS, run_id)]
        events = await conn.fetch(queries.RUN_EVENTS_PAGE, run_id, EVENTS_SHOWN + 1)
        tree = await conn.fetch(queries.RUN_TREE, run_id)
    now = datetime.now(UTC)
    bars, begin, span = views.timeline(attempts, now)
    waiting = [s for s in steps if s["kind"] == "wait_for" and s["status"] == "running"]
    return render(request, "run.html", run=dict(overview), input=identity["input"] if identity else None,
                  steps=steps, graph=views.graph(steps), bars=bars, begin=begin, span=views.duration(span),
                  events=events[:EVENTS_SHOWN], events_cut=len(events) > EVENTS_SHOWN, tree=tree,
                  waiting=waiting, live_run=str(run_id),
                  open=overview["status"] in runlist.OPEN_STATUSES)


async def stages(request: web.Request) -> web.Response:
    async with connection(request) as conn:
        health = await conn.fetch(queries.STAGE_HEALTH)
        series = await conn.fetch(queries.STAGE_SERIES)
    charts: dict[str, dict[str, Any]] = {}
    minutes = sorted({r["minute"] for r in series})
    index = {m: i for i, m in enumerate(minutes)}
    for r in series:
        stage = charts.setdefault(r["stage"], {key: [None] * len(minutes) for key in
                                               ("depth", "in_flight", "succeeded", "failed", "p95_ms")})
        for key in stage:
            value = r[key]
            stage[key][index[r["minute"]]] = float(value) if value is not None else None
    data = {"minutes": [int(m.timestamp()) for m in minutes], "stages": charts,
            "now": int(datetime.now(UTC).timestamp())}
    return render(request, "stages.html", health=health, series=data)


async def dead_letters(request: web.Request) -> web.Response:
    before = request.query.get("before")
    cursor = None
    if before:
        try:
            cursor = int(before)
        except ValueError:
            raise runlist.FilterError("before", "not a page cursor (follow the page's own links)") from None
    async with connection(request) as conn:
        rows = await conn.fetch(queries.DEAD_LETTERS_PAGE, cursor, DEAD_LETTERS_PAGE + 1)
    next_cursor = rows[DEAD_LETTERS_PAGE - 1]["seq"] if len(rows) > DEAD_LETTERS_PAGE else None
    return render(request, "dead_letters.html", rows=rows[:DEAD_LETTERS_PAGE], next_cursor=next_cursor)


async def workflows(request: web.Request) -> web.Response:
    async with connection(request) as conn:
        rows = await conn.fetch(queries.WORKFLOWS)
    return render(request, "workflows.html", rows=rows)


def _version(field: str, value: str | None) -> int | None:
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise runlist.FilterError(field, f"not a version number: {value[:20]!r}") from None
    if number < 1:
        raise runlist.FilterError(field, "versions start at 1")
    return number


def side_by_side(old: Any, new: Any) -> list[tuple[str, str, str, str]]:
    """Rows (tag, old line, new line) of two pretty-printed definitions; tag is equal/replace/delete/insert."""
    a = orjson.dumps(old, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode().splitlines()
    b = orjson.dumps(new, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode().splitlines()
    rows: list[tuple[str, str, str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        left, right = a[i1:i2], b[j1:j2]
        for k in range(max(len(left), len(right))):
            rows.append((tag, left[k] if k < len(left) else "", right[k] if k < len(right) else "",
                         f"{i1 + k + 1 if k < len(left) else ''}"))
    return rows


async def workflow(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    a, b = _version("a", request.query.get("a")), _version("b", request.query.get("b"))
    async with connection(request) as conn:
        versions = await conn.fetch(queries.WORKFLOW_VERSIONS, name)
        if not versions:
            raise web.HTTPNotFound(text=f"no workflow {name[:80]}")
        current = next((v["version"] for v in versions if v["current"]), versions[0]["version"])
        known = {v["version"] for v in versions}
        for field, value in (("a", a), ("b", b)):
            if value is not None and value not in known:
                raise runlist.FilterError(field, f"workflow {name} has no version {value}")
        if b is None:
            b = current
        if a is None:
            a = max((v for v in known if v < b), default=b)
        old = await conn.fetchval(queries.WORKFLOW_DEFINITION, name, a)
        new = await conn.fetchval(queries.WORKFLOW_DEFINITION, name, b)
    return render(request, "workflow.html", name=name, versions=versions, a=a, b=b,
                  summary=diff(name, a, old, b, new) if a != b else [],
                  rows=side_by_side(old, new), definition=new)


async def home(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/runs")


async def healthz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"ok": True, "database": "up" if state.live.up else "down"})
