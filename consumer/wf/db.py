"""asyncpg connections with orjson jsonb codecs, and the DSN the commands default to."""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import orjson


def default_dsn() -> str | None:
    return os.environ.get("WF_DATABASE_URL") or os.environ.get("DATABASE_URL")


def _encode(value: Any) -> str:
    return orjson.dumps(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for name in ("jsonb", "json"):
        await conn.set_type_codec(name, encoder=_encode, decoder=orjson.loads, schema="pg_catalog")


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset between uses: wf's pooled connections hold no session state (no SET, LISTEN,
    cursors or session locks), and asyncpg's default reset costs a round trip per release."""


async def create_pool(dsn: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=init_connection,
                                     reset=_keep_session)
    assert pool is not None
    return pool
