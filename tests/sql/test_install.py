"""The installer: fresh install, idempotent re-run, upgrade of an older install, edited migrations,
the pg_cron tick job."""

from __future__ import annotations

import psycopg
import pytest
from pgmq.install import get_embedded_install_sql
from psycopg.rows import dict_row
from wf.install import TICK_JOB, InstallError, install_sync
from wf.resources import migrations
from wfsql import chain, claim, complete, complete_batch, define, enqueue, run_status

ALL = [p.name for p in migrations()]


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, row_factory=dict_row)


def snapshot(dsn: str) -> dict[str, list]:
    """What an install can change: functions (and their bodies, settings, grants), relations,
    the migrations table, the queues."""
    with connect(dsn) as c:
        return {
            "functions": c.execute(
                """select p.oid::regprocedure::text as fn, md5(p.prosrc) as src, p.proconfig,
                          p.proacl::text as acl, p.prosecdef
                   from pg_proc p where p.pronamespace in ('wf'::regnamespace, 'pgmq'::regnamespace)
                   order by 1""").fetchall(),
            "relations": c.execute(
                """select c.oid::regclass::text as rel, c.relkind, c.relacl::text as acl
                   from pg_class c where c.relnamespace in ('wf'::regnamespace, 'pgmq'::regnamespace)
                   order by 1""").fetchall(),
            "migrations": c.execute("select * from wf.migrations order by version").fetchall(),
            "queues": c.execute("select queue_name from pgmq.list_queues() order by 1").fetchall(),
            "settings": c.execute("select * from wf.settings order by key").fetchall(),
        }


def test_install_on_an_empty_database_installs_pgmq_and_every_migration(empty_db):
    report = install_sync(empty_db)
    assert report.pgmq == "bundled"  # this server offers no pgmq extension
    assert report.applied == ALL
    assert report.changed
    with connect(empty_db) as c:
        versions = [r["version"] for r in c.execute("select version from wf.migrations order by 1")]
        assert versions == [int(name[:4]) for name in ALL]
        queues = c.execute("select queue_name from pgmq.list_queues()").fetchall()
        assert [q["queue_name"] for q in queues] == ["wf_dlq"]
        define(c, chain(n=1))
        enqueue(c, "chain")
        assert len(claim(c, "echo")) == 1


def test_install_without_pg_cron_in_the_database_leaves_the_tick_to_the_consumer(empty_db):
    assert install_sync(empty_db).cron == "absent"
    with connect(empty_db) as c:
        assert c.execute("select count(*) as n from pg_extension where extname = 'pg_cron'").fetchone()["n"] == 0


def test_second_install_applies_nothing_and_changes_nothing(empty_db):
    install_sync(empty_db)
    before = snapshot(empty_db)
    report = install_sync(empty_db)
    assert (report.changed, report.applied, report.pgmq) == (False, [], "present")
    assert snapshot(empty_db) == before


def test_older_install_upgrades_cleanly_and_keeps_its_runs(empty_db):
    report = install_sync(empty_db, upto=3)
    assert report.applied == ALL[:3]
    with connect(empty_db) as c:
        define(c, chain(n=2))
        run_id = enqueue(c, "chain", {"k": "v"}, key="before-upgrade")

    report = install_sync(empty_db)
    assert report.applied == ALL[3:]

    with connect(empty_db) as c:
        assert run_status(c, run_id) == "pending"
        for _ in range(2):
            [task] = claim(c, "echo")
            assert str(task["run_id"]) == run_id
            assert complete(c, task)
        assert run_status(c, run_id) == "completed"
        assert enqueue(c, "chain", {"k": "v"}, key="before-upgrade") == run_id


def test_steps_in_flight_during_the_upgrade_to_batched_answers_finish(empty_db):
    install_sync(empty_db, upto=ALL.index("0009_set_based_hot_path.sql"))
    with connect(empty_db) as c:
        define(c, chain(n=2))
        run_ids = [enqueue(c, "chain", {"i": i}) for i in range(3)]
        in_flight = claim(c, "echo")
    assert install_sync(empty_db).applied[0] == "0009_set_based_hot_path.sql"
    with connect(empty_db) as c:
        assert complete_batch(c, in_flight, [{} for _ in in_flight]) == 3
        next_steps = claim(c, "echo")
        assert sorted((str(t["run_id"]), t["step"]) for t in next_steps) == sorted((r, "s2") for r in run_ids)
        assert complete_batch(c, next_steps, [{} for _ in next_steps]) == 3
        assert {run_status(c, r) for r in run_ids} == {"completed"}


def test_edited_migration_is_detected(empty_db):
    install_sync(empty_db)
    with connect(empty_db) as c:
        c.execute("update wf.migrations set checksum = 'edited' where version = 2")
    with pytest.raises(InstallError, match=f"migration {ALL[1]} differs from the one applied"):
        install_sync(empty_db)


def test_install_where_pg_cron_runs_schedules_the_tick_job(cron_db):
    with connect(cron_db) as c:
        c.execute("select cron.unschedule(%s)", (TICK_JOB,))
        report = install_sync(cron_db)
        assert report.cron == "scheduled"
        job = c.execute("select schedule, command, database from cron.job where jobname = %s",
                        (TICK_JOB,)).fetchone()
        assert job == {"schedule": "* * * * *", "command": "select wf.tick()", "database": "wf_cron"}
        again = install_sync(cron_db)
        assert (again.cron, again.changed) == ("present", False)
        assert c.execute("select count(*) as n from cron.job where jobname = %s", (TICK_JOB,)).fetchone()["n"] == 1


def test_a_schema_pushed_by_supabase_is_adopted_and_only_the_missing_migrations_run(empty_db):
    # `supabase db push` applies supabase/migrations/ (the same files) and records them in
    # supabase_migrations.schema_migrations, not in wf.migrations
    with psycopg.connect(empty_db, autocommit=True) as c:
        c.execute(get_embedded_install_sql())
        c.execute("create schema supabase_migrations")
        c.execute("create table supabase_migrations.schema_migrations (version text)")
        for path in migrations()[:3]:
            c.execute(path.read_text())
            c.execute("insert into supabase_migrations.schema_migrations values (%s)", (f"2026010100{path.name[:4]}",))
    report = install_sync(empty_db, cron=False)
    assert report.applied == [p.name for p in migrations()[3:]]
    with psycopg.connect(empty_db) as c:
        assert c.execute("select count(*) from wf.migrations").fetchone()[0] == len(migrations())


def test_a_wf_schema_of_unknown_origin_is_refused(empty_db):
    with psycopg.connect(empty_db, autocommit=True) as c:
        c.execute(get_embedded_install_sql())
        c.execute(migrations()[0].read_text())
    with pytest.raises(InstallError, match="not installed by `wf install`"):
        install_sync(empty_db, cron=False)
