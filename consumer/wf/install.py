"""Install or upgrade wf in a database, in one transaction:

1. pgmq (the extension where the server has it, else the SQL bundled in the `pgmq` package),
   and a refusal, before anything else, when this role may not create queues in schema pgmq;
2. the pending migrations (sql/migrations/, forward-only: an edited one is refused);
3. the routines whose file changed since the last install, or that are missing: functions
   first (bodies checked once everything exists), then views in dependency order, replaced
   in place so that users' triggers and views on them survive; a view whose columns change
   incompatibly is dropped and re-created, together with the wf views reading it, but never
   cascading onto a user's object (the install stops and names it);
4. sql/access.sql (schema grants, policies), after sql/roles.sql made wf's roles first;
5. the queues of wf's stages that are missing (a restore from a dump leaves pgmq's tables out);
6. the pg_cron tick job, where pg_cron runs in this database.

Anything that fails rolls the whole install back, with the file's name in the message. A
second run changes nothing. `dry_run` runs the same install and rolls it back, so what it
reports is exactly what an install would do.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from wf import queries
from wf.catalog import Catalog, CatalogError, Migration, Routine, load

log = logging.getLogger("wf.install")

# one installer at a time per database (session-level advisory lock key)
_INSTALL_LOCK = 0x77660001
TICK_JOB = "wf-tick"
TICK_SCHEDULE = "* * * * *"
TICK_COMMAND = "select wf.tick()"
# the migrations of the released 0.1.0, which sql/migrations/0010_baseline.sql squashes
RELEASE_0_1_0 = ("0001_schema.sql", "0002_definitions.sql", "0003_runs.sql", "0004_consumer.sql",
                 "0005_tick_schedules_triggers.sql", "0006_views.sql", "0007_grants.sql", "0008_owner_rls.sql",
                 "0009_set_based_hot_path.sql")
# what a view's `create or replace` raises when its columns change in a way it cannot take
_COLUMNS_CHANGED = (asyncpg.exceptions.InvalidTableDefinitionError, asyncpg.exceptions.DatatypeMismatchError,
                    asyncpg.exceptions.FeatureNotSupportedError)


class InstallError(CatalogError):
    """The database cannot take this install (edited migration, a broken file, missing pgmq …)."""


@dataclass
class InstallReport:
    pgmq: str = "present"
    applied: list[str] = field(default_factory=list)  # migrations run
    adopted: list[str] = field(default_factory=list)  # migrations recorded without running (squashes)
    routines: list[str] = field(default_factory=list)  # function and view files (re-)applied
    rebuilt: list[str] = field(default_factory=list)  # views dropped and created again
    stale: list[str] = field(default_factory=list)  # routines in schema wf that no file defines
    overloaded: list[str] = field(default_factory=list)  # "sig, sig": a file's function, twice
    queues: list[str] = field(default_factory=list)  # missing queues created again (wf.ensure_queues)
    cron: str = "absent"
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        return (self.pgmq != "present" or bool(self.applied or self.adopted or self.routines or self.queues)
                or self.cron == "scheduled")

    def lines(self) -> list[str]:
        """What happened (or, in a dry run, what would), one line each, for people."""
        would = "would " if self.dry_run else ""
        out = []
        if self.pgmq != "present":
            out.append(f"{would}install pgmq ({self.pgmq})")
        out += [f"{would}apply migration {name}" for name in self.applied]
        out += [f"{would}record migration {name} (its content is already here)" for name in self.adopted]
        out += [f"{would}{'re-create' if path in self.rebuilt else 'apply'} {path}" for path in self.routines]
        out += [f"{would}re-create the missing queue {name}" for name in self.queues]
        if self.cron == "scheduled":
            out.append(f"{would}schedule the pg_cron job {TICK_JOB}")
        out += [f"warning: {name} is in schema wf but no file in sql/ defines it: drop it in a migration "
                f"(or, if it is yours, move it out of schema wf)" for name in self.stale]
        out += [f"warning: schema wf has {signatures}, but one file defines one of them: drop the other "
                f"in a migration" for signatures in self.overloaded]
        return out


async def _install_pgmq(conn: asyncpg.Connection) -> str:
    if await conn.fetchval(queries.INSTALL_HAS_PGMQ):
        return "present"
    if await conn.fetchval(queries.INSTALL_PGMQ_AVAILABLE):
        await conn.execute(queries.INSTALL_CREATE_PGMQ)
        return "extension"
    from pgmq.install import get_embedded_install_sql

    await conn.execute(get_embedded_install_sql())
    return "bundled"


async def _apply_migrations(conn: asyncpg.Connection, catalog: Catalog, report: InstallReport) -> None:
    await conn.execute(queries.LEDGER)
    done = {r["version"]: r for r in await conn.fetch(queries.LEDGER_MIGRATIONS)}
    if not done and await conn.fetchval(queries.INSTALL_HAS_RUNS) and await _adopt_0_1_0_push(conn):
        done = {r["version"]: r for r in await conn.fetch(queries.LEDGER_MIGRATIONS)}
    if not done and await conn.fetchval(queries.INSTALL_HAS_RUNS):
        raise InstallError("schema wf exists but was not installed by `wf install` or the generated Supabase "
                           "migrations (wf.migrations is empty); drop it or restore wf.migrations")
    known = {m.version for m in catalog.migrations} | {v for m in catalog.migrations for v in m.squashes}
    if unknown := sorted(set(done) - known):
        raise InstallError(f"this database has wf migration {done[unknown[0]]['name']}, which this wf does not "
                           f"know: it was installed by a newer wf (wf does not downgrade)")
    for migration in catalog.migrations:
        if migration.version in done:
            if done[migration.version]["checksum"] != migration.checksum:
                raise InstallError(f"migration {migration.name} differs from the one applied on this database; "
                                   f"migrations are forward-only: add a new one instead")
            continue
        if migration.squashes and any(v in done for v in migration.squashes):
            await _adopt_squashed(conn, migration, done)
            report.adopted.append(migration.name)
            continue
        try:
            await conn.execute(migration.text)
        except asyncpg.PostgresError as exc:
            raise InstallError(f"sql/migrations/{migration.name}: {_pg_message(exc)}") from exc
        await conn.execute(queries.LEDGER_RECORD_MIGRATION, migration.version, migration.name, migration.checksum)
        report.applied.append(migration.name)


async def _adopt_0_1_0_push(conn: asyncpg.Connection) -> bool:
    """wf 0.1.0 pushed by `supabase db push` (its supabase/migrations/ were 2026010100NNNN_wf_*.sql,
    recorded by Supabase, not in wf.migrations) is recorded as 0.1.0, so the baseline adopts it."""
    if not await conn.fetchval(queries.INSTALL_HAS_SUPABASE_LEDGER):
        return False
    pushed = set(await conn.fetchval(queries.INSTALL_SUPABASE_VERSIONS))
    if not all(f"2026010100{name[:4]}" in pushed for name in RELEASE_0_1_0):
        return False
    for name in RELEASE_0_1_0:
        await conn.execute(queries.LEDGER_RECORD_MIGRATION, int(name[:4]), name, "supabase db push")
    return True


async def _adopt_squashed(conn: asyncpg.Connection, migration: Migration, done: dict) -> None:
    """A database with the released migrations this one squashes already has its content."""
    missing = [v for v in migration.squashes if v not in done]
    if missing:
        have = ", ".join(f"{v:04d}" for v in migration.squashes if v in done)
        raise InstallError(
            f"this database has wf migrations {have} but not {', '.join(f'{v:04d}' for v in missing)}, which "
            f"{migration.name} squashes: upgrade it with the wf release that has them (0.1.0) first")
    await conn.execute(queries.LEDGER_RECORD_MIGRATION, migration.version, migration.name, migration.checksum)


def _pg_message(exc: asyncpg.PostgresError) -> str:
    """PostgreSQL's message on one line: class, message, detail and hint."""
    text = f"{exc.__class__.__name__}: {getattr(exc, 'message', None) or exc}"
    for extra in ("detail", "hint"):
        if value := getattr(exc, extra, None):
            text += f" ({extra}: {value})"
    return text


async def _execute_text(conn: asyncpg.Connection, path: str, text: str) -> None:
    """Run one file of sql/; a failure names it."""
    try:
        await conn.execute(text)
    except asyncpg.PostgresError as exc:
        raise InstallError(f"sql/{path}: {_pg_message(exc)}") from exc


async def _execute_file(conn: asyncpg.Connection, routine: Routine) -> None:
    await _execute_text(conn, routine.path, routine.text)


async def _apply_routines(conn: asyncpg.Connection, catalog: Catalog, report: InstallReport) -> None:
    recorded = {r["path"]: r["checksum"] for r in await conn.fetch(queries.LEDGER_ROUTINES)}
    functions = set(await conn.fetchval(queries.INSTALL_FUNCTION_NAMES))
    views = set(await conn.fetchval(queries.INSTALL_VIEW_NAMES))

    def changed(routine: Routine, existing: set[str]) -> bool:
        return recorded.get(routine.path) != routine.checksum or routine.name not in existing

    new_functions = [f for f in catalog.functions if changed(f, functions)]
    new_views = [v for v in catalog.views if changed(v, views)]
    # bodies are checked below, once every function and view exists (as pg_dump restores them)
    await conn.execute(queries.INSTALL_BODIES_UNCHECKED)
    for routine in new_functions:
        await _execute_file(conn, routine)
        if await conn.fetchval(queries.INSTALL_OVERLOADS, routine.name) > 1:
            raise InstallError(f"sql/{routine.path}: wf.{routine.name} now exists with two signatures; a "
                               f"signature change drops the old one in a migration "
                               f"(drop function wf.{routine.name}(…))")
    await _apply_views(conn, catalog, new_views, report)
    await conn.execute(queries.INSTALL_BODIES_CHECKED)
    for routine in new_functions:
        if await conn.fetchval(queries.INSTALL_IS_SQL_FUNCTION, routine.name):
            await _execute_file(conn, routine)
    for routine in new_functions + new_views:
        await conn.execute(queries.LEDGER_RECORD_ROUTINE, routine.path, routine.kind, routine.checksum)
    await conn.execute(queries.LEDGER_FORGET_ROUTINES, [r.path for r in catalog.routines])
    order = {r.path: i for i, r in enumerate(catalog.routines)}
    applied = {r.path for r in new_functions + new_views} | set(report.rebuilt)
    report.routines = sorted(applied, key=order.__getitem__)
    report.stale = await conn.fetchval(queries.INSTALL_STALE_ROUTINES, [f.name for f in catalog.functions],
                                       [v.name for v in catalog.views])
    report.overloaded = await conn.fetchval(queries.INSTALL_OVERLOADED_ROUTINES, [f.name for f in catalog.functions])


async def _apply_views(conn: asyncpg.Connection, catalog: Catalog, todo: list[Routine],
                       report: InstallReport) -> None:
    """Replace each view in place (its dependents keep working); where its columns change in a
    way `create or replace view` cannot take, drop it and the wf views that read it, and create
    them again in dependency order. A user's object that reads it stops the install."""
    pending = {v.name for v in todo}
    for view in catalog.views:  # dependency order
        if view.name not in pending:
            continue
        try:
            async with conn.transaction():  # a savepoint: a failed replace leaves nothing behind
                await conn.execute(view.text)
            continue
        except _COLUMNS_CHANGED as exc:
            reason = _pg_message(exc)
        except asyncpg.PostgresError as exc:
            raise InstallError(f"sql/{view.path}: {_pg_message(exc)}") from exc
        dependents = await conn.fetch(queries.INSTALL_VIEW_DEPENDENTS, f"wf.{view.name}")
        ours = {f"wf.{v.name}" for v in catalog.views}
        theirs = [d["name"] for d in dependents if d["name"] not in ours]
        if theirs:
            raise InstallError(
                f"sql/{view.path}: wf.{view.name} changes its columns ({reason}) and {', '.join(theirs)} "
                f"depend(s) on it; wf never drops your objects: drop them, install, and create them again")
        for dependent in sorted(dependents, key=lambda d: -d["depth"]):
            await conn.execute(queries.INSTALL_DROP_VIEW.format(dependent["name"]))
            pending.add(dependent["name"].removeprefix("wf."))
            report.rebuilt.append(f"views/{dependent['name'].removeprefix('wf.')}.sql")
        await conn.execute(queries.INSTALL_DROP_VIEW.format(f"wf.{view.name}"))
        report.rebuilt.append(view.path)
        await _execute_file(conn, view)


async def _schedule_tick(conn: asyncpg.Connection) -> str:
    if not await conn.fetchval(queries.INSTALL_HAS_PG_CRON):
        if not await conn.fetchval(queries.INSTALL_CAN_CREATE_PG_CRON):
            return "absent"
        await conn.execute(queries.INSTALL_CREATE_PG_CRON)
    job = await conn.fetchrow(queries.INSTALL_TICK_JOB, TICK_JOB)
    if job and job["schedule"] == TICK_SCHEDULE and job["command"] == TICK_COMMAND:
        return "present"
    await conn.execute(queries.INSTALL_SCHEDULE_TICK, TICK_JOB, TICK_SCHEDULE, TICK_COMMAND)
    return "scheduled"


class _DryRun(Exception):
    """Raised inside the install transaction to roll a dry run back."""


async def install(dsn: str, *, cron: bool = True, dry_run: bool = False, sql: Path | None = None) -> InstallReport:
    """Install wf into the database at dsn (the package's sql/, or the folder `sql`)."""
    catalog = load(sql)
    report = InstallReport(dry_run=dry_run)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(queries.INSTALL_QUIET)
        await conn.execute(queries.INSTALL_LOCK, _INSTALL_LOCK)
        try:
            async with conn.transaction():
                report.pgmq = await _install_pgmq(conn)
                await conn.execute(queries.INSTALL_PGMQ_CHECK)
                await _execute_text(conn, "roles.sql", catalog.roles)
                await _apply_migrations(conn, catalog, report)
                await _apply_routines(conn, catalog, report)
                await _execute_text(conn, "access.sql", catalog.access)
                report.queues = list(await conn.fetchval(queries.INSTALL_ENSURE_QUEUES))
                if cron:
                    report.cron = await _schedule_tick(conn)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        except asyncpg.PostgresError as exc:
            raise InstallError(_pg_message(exc)) from exc
        finally:
            await conn.execute(queries.INSTALL_UNLOCK, _INSTALL_LOCK)
    finally:
        await conn.close()
    for line in report.lines():  # callers print the report; the log keeps it for libraries
        log.debug("%s", line)
    return report


def install_sync(dsn: str, **kwargs: object) -> InstallReport:
    return asyncio.run(install(dsn, **kwargs))  # type: ignore[arg-type]
