"""What every page shares: the state (pool, auth, live hub, templates), a timed database connection,
rendering (whole page, or its live part for a refresh), the flash message, and the middlewares that turn
errors into pages (400 naming the filter, 403, 404, 503 with the database banner) and add the headers
(Server-Timing, a strict Content-Security-Policy)."""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode

import asyncpg
import jinja2
import orjson
from aiohttp import web

from wf import queries
from wf.dashboard import views
from wf.dashboard.auth import Auth, Refused
from wf.dashboard.live import Live
from wf.logs import log
from wf.runlist import FilterError

FLASH_COOKIE = "wf_flash"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
# the database is not there (down, restarting, unreachable): a banner, and the page retries by itself
OUTAGE = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
          asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)


@dataclass
class State:
    dsn: str
    auth: Auth
    live: Live
    templates: jinja2.Environment
    pool: asyncpg.Pool | None = None
    can_act: bool | None = None  # the login's privileges, read once


STATE = web.AppKey("state", State)
# the request's time with a database connection (Server-Timing); aiohttp runs each request in its own task
DB_MS: contextvars.ContextVar[float] = contextvars.ContextVar("db_ms", default=0.0)


@contextlib.asynccontextmanager
async def connection(request: web.Request) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection; the time spent with it counts as the page's database time (Server-Timing)."""
    state = request.app[STATE]
    assert state.pool is not None
    started = time.perf_counter()
    try:
        async with state.pool.acquire(timeout=5) as conn:
            if state.can_act is None:
                state.can_act = bool(await conn.fetchval(queries.CAN_ACT))
            yield conn
    finally:
        DB_MS.set(DB_MS.get() + (time.perf_counter() - started) * 1000)


def flash(response: web.StreamResponse, message: str) -> None:
    response.set_cookie(FLASH_COOKIE, quote(message[:500]), httponly=True, samesite="Strict", path="/", max_age=60)


def _common(request: web.Request) -> dict[str, Any]:
    state = request.app[STATE]
    csrf = state.auth.csrf(request)
    return {"auth_enabled": state.auth.enabled, "signed_in": csrf is not None, "csrf": csrf,
            "actions": bool(csrf) and bool(state.can_act), "login_may_act": state.can_act,
            "flash": unquote(request.cookies.get(FLASH_COOKIE, "")), "db_down": not state.live.up,
            "path": request.path_qs, "rendered_at": f"{time.time():.3f}",  # when, for /live?since=
            "section": request.path.split("/")[1] if request.path != "/" else "runs"}


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """The page, or only its `live` block when the page's script asks for a refresh (?fragment=1)."""
    state = request.app[STATE]
    started = time.perf_counter()
    page = state.templates.get_template(template)
    values = {**_common(request), **context}
    if request.query.get("fragment") == "1" and "live" in page.blocks:
        html = "".join(page.blocks["live"](page.new_context(values)))
    else:
        html = page.render(values)
    response = web.Response(text=html, content_type="text/html", status=status)
    render_ms = (time.perf_counter() - started) * 1000
    response.headers["Server-Timing"] = f"db;dur={DB_MS.get():.1f}, render;dur={render_ms:.1f}"
    if request.cookies.get(FLASH_COOKIE):
        response.del_cookie(FLASH_COOKIE, path="/")
    return response


def _error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    extra = {"reload_when_back": True} if status >= 500 else {}
    return render(request, "error.html", status=status, title=title, message=message, **extra)


@web.middleware
async def errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        return await handler(request)
    except FilterError as exc:
        return _error_page(request, 400, "Bad request", str(exc))
    except Refused as exc:
        return _error_page(request, 403, "Refused", str(exc))
    except web.HTTPNotFound as exc:
        return _error_page(request, 404, "Not found", exc.text or "no such page")
    except (web.HTTPRedirection, web.HTTPMethodNotAllowed):
        raise
    except web.HTTPException as exc:
        return _error_page(request, exc.status, exc.reason, exc.text or exc.reason)
    except OUTAGE as exc:
        state.live.up = False
        log("dashboard_database_unreachable", "warning", path=request.path, error=str(exc))
        return _error_page(request, 503, "Database unreachable",
                           "The database does not answer; this page retries by itself.")
    except asyncpg.PostgresError as exc:
        log("dashboard_query_failed", "error", path=request.path, sqlstate=exc.sqlstate, error=str(exc))
        return _error_page(request, 500, "Query failed", f"{exc.sqlstate}: {str(exc).splitlines()[0]}")
    except Exception as exc:  # a bug: logged with its cause, and a page that says so
        log("dashboard_error", "error", path=request.path, error=repr(exc))
        return _error_page(request, 500, "Internal error", "The dashboard failed on this page; its log says why.")


@web.middleware
async def headers(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.content_type == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode()


def _compact(value: Any) -> str:
    text = orjson.dumps(value, default=str).decode() if value is not None else ""
    return text if len(text) <= 300 else text[:299] + "…"


def _short_id(value: Any) -> str:
    """A run id as lists show it: its last 12 hex digits (a uuid7 begins with its time, the same for a minute)."""
    return "…" + str(value)[-12:]


def _count(value: int | None, cap: int) -> str:
    if value is None:
        return ""
    return f"{cap:,}+" if value > cap else f"{value:,}"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("wf.dashboard", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ts=_ts, short_id=_short_id, pretty=_pretty, compact=_compact, duration=views.duration,
                       count=_count, query=lambda args: urlencode(args))
    return env
