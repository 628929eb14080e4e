"""The dashboard's aiohttp application: routes, the pool opened lazily, the live hub's side tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from aiohttp import web

from wf import db
from wf.dashboard import actions, pages
from wf.dashboard.app import STATE, State, errors, headers, templates
from wf.dashboard.auth import Auth
from wf.dashboard.live import Live

STATIC = Path(__file__).parent / "static"


async def _pool(dsn: str) -> asyncpg.Pool:
    """No connection at start (the dashboard starts while the database is down); custom plans for the
    run list's optional filters (consumer/wf/queries.py, the run list)."""
    created = await asyncpg.create_pool(dsn, min_size=0, max_size=4, init=db.init_connection, command_timeout=10,
                                        timeout=5, server_settings={"application_name": "wf dashboard",
                                                                    "plan_cache_mode": "force_custom_plan",
                                                                    "jit": "off"})
    assert created is not None
    return created


def create_app(dsn: str, token: str | None) -> web.Application:
    # a long search in the URL is cut by the page (runlist.SEARCH_MAX_CHARS), not refused by the parser
    app = web.Application(middlewares=[headers, errors], client_max_size=256 * 1024,
                          handler_args={"max_line_size": 256 * 1024})
    state = State(dsn=dsn, auth=Auth(token), live=Live(dsn), templates=templates())
    app[STATE] = state
    r = app.router
    r.add_get("/", pages.home)
    r.add_get("/runs", pages.runs)
    r.add_get("/runs/bulk", actions.bulk_confirm)
    r.add_post("/runs/bulk", actions.bulk)
    r.add_get("/runs/{run_id}", pages.run)
    r.add_post("/runs/{run_id}/{action}", actions.run_action)
    r.add_get("/stages", pages.stages)
    r.add_post("/stages/{stage}/{action}", actions.stage_action)
    r.add_get("/dead-letters", pages.dead_letters)
    r.add_get("/workflows", pages.workflows)
    r.add_get("/workflows/{name}", pages.workflow)
    r.add_get("/login", actions.login_page)
    r.add_post("/login", actions.login)
    r.add_post("/logout", actions.logout)
    r.add_get("/live", state.live.stream)
    r.add_get("/healthz", pages.healthz)
    r.add_static("/static", STATIC, append_version=False)
    app.cleanup_ctx.append(_lifetime)
    app.on_shutdown.append(_close_streams)
    return app


async def _close_streams(app: web.Application) -> None:
    app[STATE].live.close_streams()


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    state.pool = await _pool(state.dsn)
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(state.live.listen(stopping), name="live-listen"),
             asyncio.create_task(state.live.flush(stopping), name="live-flush")]
    yield
    stopping.set()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await state.pool.close()


def serve(dsn: str, host: str, port: int, token: str | None) -> None:
    web.run_app(create_app(dsn, token), host=host, port=port, access_log=None,
                print=lambda text: print(text.replace("(Press CTRL+C to quit)", "").strip(), flush=True),
                shutdown_timeout=3)
