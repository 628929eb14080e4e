"""The run list shared by `wf runs` and the dashboard's Runs page: filters checked and parsed from text,
keyset pages (never OFFSET: a page costs the same at run 50 and at run 1,000,000), counts per status.

A search looks for a text in the runs' input (as JSON text, case-insensitive) among the newest
SEARCH_WINDOW runs the other filters select, so one page never reads more than that; the page then says
where the search stopped and continues from there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from wf import queries

STATUSES = ("scheduled", "pending", "running", "paused", "compensating", "completed", "failed",
            "compensation_failed", "cancelled")
OPEN_STATUSES = ("scheduled", "pending", "running", "paused", "compensating")
SEARCH_WINDOW = 10_000  # runs one search page reads at most (≈ 30 ms at 1M runs)
SEARCH_MAX_CHARS = 200  # a longer search text is cut to this
TEXT_MAX_CHARS = 200  # longest workflow name or correlation id a filter takes
COUNT_CAP = 10_000  # counts per status stop here ("10,000+")
PAGE_SIZE = 50


class FilterError(ValueError):
    """A filter value that cannot be used: `field` names the filter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class RunFilter:
    status: str | None = None
    workflow: str | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    correlation_id: str | None = None
    search: str | None = None
    before: tuple[datetime, uuid.UUID] | None = None  # keyset cursor: runs older than this one
    limit: int = PAGE_SIZE
    search_cut: bool = False  # the search text was longer than SEARCH_MAX_CHARS and was cut

    def query_args(self) -> dict[str, str]:
        """The filter as URL query arguments (without the cursor), for links and forms."""
        args = {"status": self.status, "workflow": self.workflow, "correlation_id": self.correlation_id,
                "q": self.search, "from": _iso(self.since), "to": _iso(self.until)}
        return {k: v for k, v in args.items() if v}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def parse_time(field: str, value: str) -> datetime:
    """An ISO 8601 time (`2026-12-01`, `2026-12-01T10:00`, with or without an offset; UTC when none)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise FilterError(field, f"not an ISO time (like 2026-12-01T10:00): {value[:60]!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def encode_cursor(created_at: datetime, run_id: uuid.UUID) -> str:
    return f"{created_at.isoformat()}~{run_id}"


def parse_cursor(field: str, value: str) -> tuple[datetime, uuid.UUID]:
    at, sep, run_id = value.partition("~")
    if not sep:
        raise FilterError(field, "not a page cursor (follow the page's own links)")
    try:
        return parse_time(field, at), uuid.UUID(run_id)
    except ValueError:
        raise FilterError(field, "not a page cursor (follow the page's own links)") from None


def _text(field: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > TEXT_MAX_CHARS:
        raise FilterError(field, f"longer than {TEXT_MAX_CHARS} characters")
    return value.strip()


def parse_filter(args: dict[str, str]) -> RunFilter:
    """A RunFilter from text arguments (a URL's query, CLI options); FilterError names the bad one."""
    status = _text("status", args.get("status"))
    if status is not None and status not in STATUSES:
        raise FilterError("status", f"unknown status {status[:40]!r} (one of {', '.join(STATUSES)})")
    since = parse_time("from", args["from"]) if args.get("from", "").strip() else None
    until = parse_time("to", args["to"]) if args.get("to", "").strip() else None
    if since is not None and until is not None and until <= since:
        raise FilterError("to", "must be after from")
    search = args.get("q") or None
    cut = search is not None and len(search) > SEARCH_MAX_CHARS
    search = search[:SEARCH_MAX_CHARS] if search is not None else None
    before = parse_cursor("before", args["before"]) if args.get("before") else None
    limit = PAGE_SIZE
    if args.get("limit"):
        try:
            limit = int(args["limit"])
        except ValueError:
            raise FilterError("limit", f"not a number: {args['limit'][:20]!r}") from None
        if not 1 <= limit <= 10_000:
            raise FilterError("limit", "must be between 1 and 10000")
    return RunFilter(status=status, workflow=_text("workflow", args.get("workflow")), since=since, until=until,
                     correlation_id=_text("correlation_id", args.get("correlation_id")),
                     search=search if search and search.strip() else None, before=before, limit=limit,
                     search_cut=cut)


def _needle(text: str) -> str:
    """The search text as RUN_PAGE looks for it: lower case, every character literal (strpos in
    lower(input::text), twice as fast as ilike over the window's inputs)."""
    return text.lower()


@dataclass
class RunPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None  # older runs exist (or a search continues) from here
    scanned: int  # runs read for this page
    search_stopped: bool  # the search read its whole window: older runs were not searched yet


async def page(conn: asyncpg.Connection, f: RunFilter) -> RunPage:
    """One page of runs, newest first, with their overview rows."""
    window = SEARCH_WINDOW if f.search else f.limit + 1
    before_at, before_id = f.before if f.before else (None, None)
    hits = await conn.fetch(queries.RUN_PAGE, f.status, f.workflow, f.since, f.until, f.correlation_id,
                            before_at, before_id, f.limit + 1, window, _needle(f.search) if f.search else None)
    ids = [h["run_id"] for h in hits if h["run_id"] is not None]
    scanned = hits[0]["scanned"] if hits else 0
    shown = ids[: f.limit]
    overview = {r["run_id"]: dict(r) for r in await conn.fetch(queries.RUNS_BY_ID, shown)} if shown else {}
    rows = [overview[i] for i in shown if i in overview]  # a run deleted in between is left out
    next_cursor = None
    if len(ids) > f.limit:
        last = hits[f.limit - 1]
        next_cursor = encode_cursor(last["created_at"], last["run_id"])
    search_stopped = bool(f.search) and scanned >= window
    if search_stopped and next_cursor is None:
        next_cursor = encode_cursor(hits[0]["edge_created_at"], hits[0]["edge_run_id"])
    return RunPage(rows=rows, next_cursor=next_cursor, scanned=scanned, search_stopped=search_stopped)


async def counts(conn: asyncpg.Connection, f: RunFilter) -> dict[str, int]:
    """Runs per status under the filter's workflow, time range and correlation id (not its status or
    search), each counted up to COUNT_CAP + 1: more than COUNT_CAP shows as "10,000+"."""
    rows = await conn.fetch(queries.RUN_COUNTS, f.workflow, f.since, f.until, f.correlation_id, COUNT_CAP + 1)
    return {r["status"]: r["n"] for r in rows}

