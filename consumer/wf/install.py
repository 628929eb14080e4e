"""Install or upgrade wf in a database: pgmq, the sql/ migrations, the pg_cron tick job.

Idempotent: a second run changes nothing; an older install gets the migrations it lacks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field

import asyncpg

from wf.resources import migrations

log = logging.getLogger("wf.install")

# one installer at a time per database (session-level advisory lock key)
_INSTALL_LOCK = 0x77660001
TICK_JOB = "wf-tick"
TICK_SCHEDULE = "* * * * *"
TICK_COMMAND = "select wf.tick()"


class InstallError(RuntimeError):
    """The database cannot take this install (edited migration, missing pgmq …)."""


@dataclass
class InstallReport:
    pgmq: str = "present"
    applied: list[str] = field(default_factory=list)
    cron: str = "absent"

    @property
    def changed(self) -> bool:
        return self.pgmq != "present" or bool(self.applied) or self.cron == "scheduled"


def _checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def _install_pgmq(conn: asyncpg.Connection) -> str:
    if await conn.fetchval(
        """select exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                          where n.nspname = 'pgmq' and p.proname = 'send')"""
    ):
        return "present"
    if await conn.fetchval("select exists (select 1 from pg_available_extensions where name = 'pgmq')"):
        await conn.execute("create extension if not exists pgmq")
        return "extension"
    from pgmq.install import get_embedded_install_sql

    async with conn.transaction():
        await conn.execute(get_embedded_install_sql())
    return "bundled"


async def _apply_migrations(conn: asyncpg.Connection, upto: int | None) -> list[str]:
    await conn.execute(
        """
        create schema if not exists wf;
        create table if not exists wf.migrations (
          version    int primary key,
          name       text not null,
          checksum   text not null,
          applied_at timestamptz not null default now()
        );
        revoke all on wf.migrations from public;
        """
    )
    done = {r["version"]: r for r in await conn.fetch("select version, name, checksum from wf.migrations")}
    if not done:
        await _adopt_supabase_migrations(conn)
        done = {r["version"]: r for r in await conn.fetch("select version, name, checksum from wf.migrations")}
    applied: list[str] = []
    for path in migrations():
        version = int(path.name[:4])
        if upto is not None and version > upto:
            break
        text = path.read_text()
        if version in done:
            if done[version]["checksum"] != _checksum(text):
                raise InstallError(
                    f"migration {path.name} differs from the one applied on "
                    f"this database; migrations are forward-only: add a new one instead"
                )
            continue
        async with conn.transaction():
            await conn.execute(text)
            await conn.execute(
                "insert into wf.migrations (version, name, checksum) values ($1, $2, $3)",
                version,
                path.name,
                _checksum(text),
            )
        applied.append(path.name)
        log.info("applied migration %s", path.name)
    return applied


async def _adopt_supabase_migrations(conn: asyncpg.Connection) -> None:
    """A schema applied by `supabase db push` (supabase/migrations/ holds the same files under
    Supabase's names) is recorded as installed, so `wf install` only adds what is missing."""
    if not await conn.fetchval("select to_regclass('wf.runs') is not null"):
        return
    pushed: set[str] = set()
    if await conn.fetchval("select to_regclass('supabase_migrations.schema_migrations') is not null"):
        pushed = {r["version"] for r in await conn.fetch("select version from supabase_migrations.schema_migrations")}
    adopted = 0
    for path in migrations():
        if f"2026010100{path.name[:4]}" in pushed:
            await conn.execute("insert into wf.migrations (version, name, checksum) values ($1, $2, $3)",
                               int(path.name[:4]), path.name, _checksum(path.read_text()))
            adopted += 1
    if not adopted:
        raise InstallError("schema wf exists but was not installed by `wf install` or `supabase db push`; "
                           "drop it or restore wf.migrations")
    log.info("adopted %d migrations applied by supabase db push", adopted)


async def _schedule_tick(conn: asyncpg.Connection) -> str:
    has_cron = await conn.fetchval("select exists (select 1 from pg_extension where extname = 'pg_cron')")
    if not has_cron:
        can_create = await conn.fetchval(
            """select exists (select 1 from pg_available_extensions where name = 'pg_cron')
                      and current_setting('cron.database_name', true) = current_database()"""
        )
        if not can_create:
            return "absent"
        await conn.execute("create extension if not exists pg_cron")
    job = await conn.fetchrow("select schedule, command from cron.job where jobname = $1", TICK_JOB)
    if job and job["schedule"] == TICK_SCHEDULE and job["command"] == TICK_COMMAND:
        return "present"
    await conn.execute("select cron.schedule($1, $2, $3)", TICK_JOB, TICK_SCHEDULE, TICK_COMMAND)
    return "scheduled"


async def install(dsn: str, *, upto: int | None = None, cron: bool = True) -> InstallReport:
    """Install wf into the database at dsn; `upto` stops after that migration number (tests)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("set client_min_messages = warning")
        await conn.execute("select pg_advisory_lock($1)", _INSTALL_LOCK)
        try:
            report = InstallReport()
            report.pgmq = await _install_pgmq(conn)
            report.applied = await _apply_migrations(conn, upto)
            if cron:
                report.cron = await _schedule_tick(conn)
            return report
        finally:
            await conn.execute("select pg_advisory_unlock($1)", _INSTALL_LOCK)
    finally:
        await conn.close()


def install_sync(dsn: str, **kwargs: object) -> InstallReport:
    return asyncio.run(install(dsn, **kwargs))  # type: ignore[arg-type]
