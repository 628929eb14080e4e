"""Supabase in practice (README, "Supabase sharp edges"): a pgmq schema the deploying role may not
create in is refused before anything else, by `wf install` and by the first generated migration;
queue tables missing after a restore come back with `wf install` and wf.tick; service_role reads
wf after wf.grant_service_access(), also across installs; `supabase db push` schedules the tick
job where pg_cron is enabled."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import psycopg
import pytest
from pgmq.install import get_embedded_install_sql
from psycopg import errors
from psycopg.rows import dict_row
from wf.install import TICK_COMMAND, TICK_JOB, TICK_SCHEDULE, InstallError, install_sync
from wfsql import chain, claim, complete, define, enqueue, run_status

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = sorted((REPO / "supabase/migrations").glob("*_wf_*.sql"))
DASHBOARD_FIX = "enable pgmq in the Supabase Dashboard (Database → Extensions) first"


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, row_factory=dict_row)


def as_role(dsn: str, role: str) -> str:
    return dsn.replace("://postgres@", f"://{role}@", 1)


# ---- (a) schema pgmq belongs to someone else ---------------------------------------------------


@pytest.fixture
def foreign_pgmq(empty_db) -> Iterator[str]:
    """An empty database whose pgmq the superuser made (as Supabase's superuser creates the
    extension), and a DSN for a login that may create schemas in it but not in schema pgmq."""
    role = f"wf_test_deployer_{uuid.uuid4().hex[:8]}"
    with connect(empty_db) as c:
        c.execute("set client_min_messages = warning")
        c.execute(get_embedded_install_sql())
        c.execute(f"create role {role} login")
        c.execute(f"grant create on database {c.info.dbname} to {role}")
    try:
        yield as_role(empty_db, role)
    finally:
        with connect(empty_db) as c:
            c.execute(f"drop owned by {role}")
        with connect(empty_db.rsplit("/", 1)[0] + "/postgres") as c:
            c.execute(f"drop role if exists {role}")


def test_install_refuses_a_role_that_may_not_create_in_schema_pgmq_naming_the_fix(foreign_pgmq):
    with pytest.raises(InstallError, match=r"InsufficientPrivilegeError: wf cannot create its queues") as caught:
        install_sync(foreign_pgmq, cron=False)
    assert DASHBOARD_FIX in str(caught.value)
    assert "grant usage, create on schema pgmq to wf_test_deployer_" in str(caught.value)
    with connect(foreign_pgmq) as c:  # refused before anything was made
        assert c.execute("select to_regnamespace('wf') is null as gone").fetchone()["gone"]


def test_the_first_supabase_migration_refuses_a_role_that_may_not_create_in_schema_pgmq(foreign_pgmq):
    with connect(foreign_pgmq) as c:
        with pytest.raises(errors.InsufficientPrivilege, match="wf cannot create its queues") as caught:
            for path in MIGRATIONS:
                with c.transaction():
                    c.execute(path.read_text())
        assert DASHBOARD_FIX in str(caught.value)
        # the preflight stopped it: the baseline (which would fail at pgmq.create('wf_dlq')) never ran
        assert path.name.endswith("_wf_preflight.sql") and path == MIGRATIONS[0]
        assert c.execute("select to_regnamespace('wf') is null as gone").fetchone()["gone"]


def test_the_pgmq_preflight_lets_a_role_with_create_on_schema_pgmq_through(empty_db, foreign_pgmq):
    role = foreign_pgmq.split("://", 1)[1].split("@", 1)[0]
    with connect(empty_db) as admin:
        admin.execute(f"grant usage, create on schema pgmq to {role}")
    with connect(foreign_pgmq) as c:
        c.execute(MIGRATIONS[0].read_text())  # raises when refused


# ---- (b) queue tables left out of a dump --------------------------------------------------------


def drop_queue_tables(c: psycopg.Connection, *queues: str) -> None:
    """What a restore from `pg_dump` / `supabase db dump` leaves: pgmq.meta's rows (a configuration
    table of the extension, dumped) without the queue tables (members of the extension, not dumped)."""
    for queue in queues:
        for table in (f"pgmq.q_{queue}", f"pgmq.a_{queue}"):
            if c.execute("select count(*) as n from pg_depend where objid = %s::regclass and deptype = 'e'",
                         (table,)).fetchone()["n"]:  # pgmq 1.4.4's extension owns it: detach it first
                c.execute(f"alter extension pgmq drop table {table}")
            c.execute(f"drop table {table}")


def run_one_step(c: psycopg.Connection) -> str:
    run_id = enqueue(c, "chain")
    [task] = claim(c, "echo")
    assert complete(c, task, {"ok": True})
    return run_status(c, run_id)


def test_wf_install_re_creates_a_stage_queue_dropped_by_a_restore(db):
    with connect(db) as c:
        define(c, chain(n=1))
        drop_queue_tables(c, "wf_echo")
        with pytest.raises(errors.UndefinedTable, match=r'relation "pgmq\.q_wf_echo" does not exist'):
            enqueue(c, "chain")
        report = install_sync(db, cron=False)
        assert (report.queues, report.changed) == (["wf_echo"], True)
        assert report.lines() == ["re-create the missing queue wf_echo"]
        assert run_one_step(c) == "completed"
        assert install_sync(db, cron=False).queues == []


def test_tick_re_creates_missing_queues_and_says_which(db):
    with connect(db) as c:
        define(c, chain(n=1))
        drop_queue_tables(c, "wf_echo", "wf_dlq")
        assert c.execute("select wf.tick() -> 'recreated_queues' as q").fetchone()["q"] == ["wf_dlq", "wf_echo"]
        assert run_one_step(c) == "completed"
        assert c.execute("select count(*) as n from wf.dead_letters").fetchone()["n"] == 0  # reads q_wf_dlq
        assert c.execute("select wf.tick() -> 'recreated_queues' as q").fetchone()["q"] == []


def test_a_dry_run_says_which_missing_queues_it_would_re_create_and_leaves_them_missing(db):
    with connect(db) as c:
        define(c, chain(n=1))
        drop_queue_tables(c, "wf_echo")
        assert install_sync(db, cron=False, dry_run=True).lines() == ["would re-create the missing queue wf_echo"]
        assert c.execute("select to_regclass('pgmq.q_wf_echo') is null as gone").fetchone()["gone"]


# ---- (c) service_role and PostgREST --------------------------------------------------------------


@pytest.fixture
def service_role(supa) -> psycopg.Connection:
    """Supabase's service_role (noinherit, bypassrls), made once per cluster."""
    if not supa.execute("select 1 from pg_roles where rolname = 'service_role'").fetchone():
        with suppress(errors.DuplicateObject):
            supa.execute("create role service_role nologin noinherit bypassrls")
    return supa


def read_as_service_role(c: psycopg.Connection, sql: str) -> list[dict]:
    with c.transaction():
        c.execute("set local role service_role")
        return c.execute(sql).fetchall()


def test_service_role_gets_permission_denied_for_schema_wf_until_granted(service_role, supa_db):
    c = service_role
    define(c, chain(n=1))
    enqueue(c, "chain")
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied for schema wf"):
        read_as_service_role(c, "select * from wf.runs_overview")
    c.execute("select wf.grant_service_access()")
    c.execute("select wf.grant_service_access()")  # idempotent
    assert [r["workflow"] for r in read_as_service_role(c, "select workflow from wf.runs_overview")] == ["chain"]
    assert read_as_service_role(c, "select count(*) as n from wf.stage_health")[0]["n"] >= 1  # a reader function
    with pytest.raises(errors.InsufficientPrivilege):  # reads only: no enqueue, no tables
        read_as_service_role(c, "select wf.enqueue('chain')")
    with pytest.raises(errors.InsufficientPrivilege):
        read_as_service_role(c, "select * from wf.runs")


def test_service_role_keeps_reading_a_view_a_later_install_re_created(service_role, supa_db):
    c = service_role
    c.execute("select wf.grant_service_access()")
    c.execute("drop view wf.alerts")
    install_sync(supa_db, cron=False)
    assert read_as_service_role(c, "select count(*) as n from wf.alerts")[0]["n"] >= 0


def test_install_grants_service_role_nothing_it_was_not_given(service_role, supa_db):
    install_sync(supa_db, cron=False)
    with pytest.raises(errors.InsufficientPrivilege, match="permission denied for schema wf"):
        read_as_service_role(service_role, "select * from wf.runs_overview")


# ---- (d) the tick job from `supabase db push` ------------------------------------------------------


def test_supabase_db_push_schedules_the_tick_job_where_pg_cron_is_enabled(cron_db):
    with connect(cron_db) as c:
        c.execute("select cron.unschedule(%s)", (TICK_JOB,))
        try:
            with c.transaction():
                c.execute(MIGRATIONS[-1].read_text())  # the routines migration, as `supabase db push` runs it
            job = c.execute("select schedule, command from cron.job where jobname = %s", (TICK_JOB,)).fetchall()
            assert job == [{"schedule": TICK_SCHEDULE, "command": TICK_COMMAND}]
            with c.transaction():
                c.execute(MIGRATIONS[-1].read_text())
            assert c.execute("select count(*) as n from cron.job where jobname = %s", (TICK_JOB,)).fetchone()["n"] == 1
            assert install_sync(cron_db).cron == "present"  # the job `wf install` would have made
        finally:
            install_sync(cron_db)


def test_supabase_db_push_without_pg_cron_schedules_nothing_and_succeeds(empty_db):
    with connect(empty_db) as c:
        c.execute("set client_min_messages = warning")
        c.execute(get_embedded_install_sql())
        for path in MIGRATIONS:
            with c.transaction():
                c.execute(path.read_text())
        assert c.execute("select to_regnamespace('cron') is null as none").fetchone()["none"]
        assert c.execute("select count(*) as n from wf.migrations").fetchone()["n"] > 0
