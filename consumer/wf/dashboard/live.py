"""Live pages: one LISTEN connection on `wf_changes` (sql/functions/notify_changes.sql: each insert into
wf.events sends the run ids it touched, or `*`), fanned out to the open pages as server-sent events.

Changes are gathered for FLUSH_SECONDS and sent once, so a busy database costs a page at most a few
refreshes a second. The connection is watched; when the database goes away every page is told (`status:
down`, the page shows its banner) and the hub reconnects every RECONNECT_SECONDS; once back, pages are told
`status: up` and refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from wf import queries
from wf.logs import log

CHANNEL = "wf_changes"
FLUSH_SECONDS = 0.25
RECONNECT_SECONDS = 1.0
CHECK_SECONDS = 2.0
HEARTBEAT_SECONDS = 15.0
REMEMBERED_RUNS = 10_000  # runs whose last change time is kept (for pages subscribing late)
CLOSE = "close"  # not an event pages see: the stream ends (the dashboard stops)


@dataclass(eq=False)
class Subscriber:
    run_id: str | None  # only this run's changes (a run page), or all
    since: float = 0.0  # what the page shows is as of this server time (its render, then its last refresh)
    queue: asyncio.Queue[tuple[str, str]] = field(default_factory=lambda: asyncio.Queue(maxsize=16))

    def send(self, event: str, data: str) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a slow page misses a refresh, not its next one
            self.queue.put_nowait((event, data))


class Live:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.subscribers: set[Subscriber] = set()
        self.up = False
        self._changed: set[str] = set()
        self._dirty = asyncio.Event()
        # when a change was last heard: of any run, of each recent run, of unknown runs (`*`, a reconnection)
        self._last_any = 0.0
        self._last_unknown = 0.0
        self._last_by_run: OrderedDict[str, float] = OrderedDict()

    def _heard(self, ids: list[str]) -> None:
        now = time.time()
        self._last_any = now
        for run_id in ids:
            if run_id == "*":
                self._last_unknown = now
                continue
            self._last_by_run[run_id] = now
            self._last_by_run.move_to_end(run_id)
        while len(self._last_by_run) > REMEMBERED_RUNS:
            self._last_by_run.popitem(last=False)

    def changed_since(self, run_id: str | None, since: float) -> bool:
        """Did something the page shows change after it was rendered (server time `since`)?"""
        if self._last_unknown > since:
            return True
        return (self._last_by_run.get(run_id, 0.0) if run_id else self._last_any) > since

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        ids = payload.split(",") if payload else ["*"]
        self._heard(ids)
        self._changed.update(ids)
        self._dirty.set()

    def _status(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            for sub in self.subscribers:
                sub.send("status", "up" if up else "down")

    async def listen(self, stopping: asyncio.Event) -> None:
        """Keep one LISTEN connection; on loss say so and reconnect."""
        while not stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5, server_settings={"application_name": "wf dashboard"})
                await conn.add_listener(CHANNEL, self._on_notify)
                self._status(True)
                self._heard(["*"])  # what happened while nobody listened
                self._changed.add("*")
                self._dirty.set()
                while not stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), CHECK_SECONDS)
                    await conn.fetchval(queries.PING, timeout=5)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if self.up:
                    log("dashboard_database_lost", "warning", error=str(exc))
                self._status(False)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), RECONNECT_SECONDS)

    async def flush(self, stopping: asyncio.Event) -> None:
        """Every FLUSH_SECONDS at most: tell each page whose run changed (any change for list pages)."""
        while not stopping.is_set():
            await self._dirty.wait()
            self._dirty.clear()
            changed, self._changed = self._changed, set()
            now = time.time()
            for sub in self.subscribers:
                if (sub.run_id is None or "*" in changed or sub.run_id in changed) \
                        and self.changed_since(sub.run_id, sub.since):
                    sub.send("change", sub.run_id or "*")
                    sub.since = now
            await asyncio.sleep(FLUSH_SECONDS)

    def close_streams(self) -> None:
        """At shutdown: end every stream now (a page that went away is noticed only at the next write)."""
        for sub in self.subscribers:
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait((CLOSE, ""))

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /live[?run=ID][&since=T]: server-sent events `change` and `status` (up/down) until the page
        closes; T is when the page was rendered (server time): a change heard after it is sent at once."""
        run_id = request.query.get("run") or None
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            since = 0.0
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        sub = Subscriber(run_id[:40] if run_id else None, since)
        self.subscribers.add(sub)
        try:
            # the status, and a change if one was heard between the page's render and this subscription
            first = f"retry: 1000\nevent: status\ndata: {'up' if self.up else 'down'}\n\n"
            if self.changed_since(sub.run_id, since):
                first += f"event: change\ndata: {sub.run_id or '*'}\n\n"
                sub.since = time.time()
            await response.write(first.encode())
            while True:
                try:
                    event, data = await asyncio.wait_for(sub.queue.get(), HEARTBEAT_SECONDS)
                    if event == CLOSE:
                        break
                    await response.write(f"event: {event}\ndata: {data}\n\n".encode())
                except TimeoutError:
                    await response.write(b": still here\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.subscribers.discard(sub)
        return response

