"""The installer on one release: fresh install, idempotent re-run, dry run, changed routines,
views replaced or rebuilt without touching users' objects, bad files, the pg_cron tick job.
Upgrades from 0.1.0 and `supabase db push` are in test_upgrade.py."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
from pgmq.install import get_embedded_install_sql
from psycopg.rows import dict_row
from wf.catalog import CatalogError, load
from wf.install import TICK_JOB, InstallError, install_sync
from wf.resources import sql_dir
from wfsql import chain, claim, define, enqueue

CATALOG = load()
MIGRATIONS = [m.name for m in CATALOG.migrations]
ROUTINES = [r.path for r in CATALOG.routines]


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, row_factory=dict_row)


def snapshot(dsn: str) -> dict[str, list]:
    """What an install can change: functions (and their bodies, settings, grants), relations,
    the ledger, the queues, the policies."""
    with connect(dsn) as c:
        return {
            "functions": c.execute(
                """select p.oid::regprocedure::text as fn, md5(p.prosrc) as src, p.proconfig,
                          p.proacl::text as acl, p.prosecdef
                   from pg_proc p where p.pronamespace in ('wf'::regnamespace, 'pgmq'::regnamespace)
                   order by 1""").fetchall(),
            "relations": c.execute(
                """select c.oid::regclass::text as rel, c.oid, c.relkind, c.relacl::text as acl
                   from pg_class c where c.relnamespace in ('wf'::regnamespace, 'pgmq'::regnamespace)
                   order by 1""").fetchall(),
            "migrations": c.execute("select * from wf.migrations order by version").fetchall(),
            "routines": c.execute("select * from wf.routines order by path").fetchall(),
            "queues": c.execute("select queue_name from pgmq.list_queues() order by 1").fetchall(),
            "settings": c.execute("select * from wf.settings order by key").fetchall(),
            "policies": c.execute("select * from pg_policies where schemaname = 'wf' order by policyname").fetchall(),
        }


@pytest.fixture
def sql_copy(tmp_path) -> Path:
    """A copy of sql/ to edit: what the next release's files would be."""
    return Path(shutil.copytree(sql_dir(), tmp_path / "sql"))


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1))


def offered_pgmq(dsn: str) -> str:
    """How an install on this server provides pgmq: the extension where the server offers it
    (Supabase, a server with pgmq installed), else the SQL bundled in the `pgmq` package."""
    with connect(dsn) as c:
        offered = c.execute("select count(*) as n from pg_available_extensions where name = 'pgmq'").fetchone()["n"]
    return "extension" if offered else "bundled"


def test_install_on_an_empty_database_installs_pgmq_migrations_and_every_routine(empty_db):
    report = install_sync(empty_db)
    assert report.pgmq == offered_pgmq(empty_db)
    with connect(empty_db) as c:  # as an extension, pgmq is one; bundled, it is not
        is_extension = c.execute("select count(*) as n from pg_extension where extname = 'pgmq'").fetchone()["n"]
        assert bool(is_extension) == (report.pgmq == "extension")
    assert (report.applied, report.routines, report.stale) == (MIGRATIONS, ROUTINES, [])
    assert report.changed
    with connect(empty_db) as c:
        assert [r["name"] for r in c.execute("select name from wf.migrations order by version")] == MIGRATIONS
        assert [r["path"] for r in c.execute("select path from wf.routines order by path")] == sorted(ROUTINES)
        assert [q["queue_name"] for q in c.execute("select queue_name from pgmq.list_queues() order by 1")] == [
            "wf__wf", "wf_dlq"]
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
    assert (report.changed, report.applied, report.routines, report.pgmq) == (False, [], [], "present")
    assert report.lines() == []
    assert snapshot(empty_db) == before


def test_dry_run_on_an_empty_database_says_what_it_would_do_and_does_nothing(empty_db):
    report = install_sync(empty_db, dry_run=True)
    pgmq = offered_pgmq(empty_db)
    assert (report.pgmq, report.applied, report.routines) == (pgmq, MIGRATIONS, ROUTINES)
    assert report.lines()[:2] == [f"would install pgmq ({pgmq})", f"would apply migration {MIGRATIONS[0]}"]
    with connect(empty_db) as c:
        assert c.execute("select count(*) as n from pg_namespace where nspname in ('wf', 'pgmq')").fetchone()["n"] == 0


def test_dry_run_lists_only_the_changed_routine_and_leaves_it_unchanged(db, sql_copy):
    edit(sql_copy, "functions/backoff_delay.sql", "-- wf.backoff_delay:", "-- wf.backoff_delay (edited):")
    before = snapshot(db)
    report = install_sync(db, cron=False, dry_run=True, sql=sql_copy)
    assert report.lines() == ["would apply functions/backoff_delay.sql"]
    assert snapshot(db) == before


def test_a_changed_function_file_is_applied_and_nothing_else(db, sql_copy):
    edit(sql_copy, "functions/backoff_delay.sql", "return ceil(v_delay)::int;", "return ceil(v_delay)::int;  -- edited")
    before = snapshot(db)
    report = install_sync(db, cron=False, sql=sql_copy)
    assert (report.applied, report.routines) == ([], ["functions/backoff_delay.sql"])
    after = snapshot(db)
    changed = [a["fn"] for a, b in zip(before["functions"], after["functions"], strict=True) if a != b]
    assert changed == ["wf.backoff_delay(jsonb,integer)"]
    assert install_sync(db, cron=False, sql=sql_copy).routines == []


def test_a_dropped_routine_is_applied_again_although_its_file_did_not_change(db):
    with connect(db) as c:
        c.execute("drop view wf.alerts")  # a view no other view reads
    assert install_sync(db, cron=False).routines == ["views/alerts.sql"]
    with connect(db) as c:
        assert c.execute("select count(*) as n from wf.alerts").fetchone()["n"] == 0


def test_edited_migration_is_refused_naming_the_file(db):
    with connect(db) as c:
        c.execute("update wf.migrations set checksum = 'edited' where version = 10")
    with pytest.raises(InstallError, match=f"migration {MIGRATIONS[0]} differs from the one applied"):
        install_sync(db, cron=False)


def test_a_view_replaced_in_place_keeps_a_users_view_on_it(db, sql_copy):
    with connect(db) as c:
        c.execute("create view public.my_failed as "
                  "select run_id, workflow from wf.runs_overview where status = 'failed'")
    # a new column at the end: `create or replace view` takes it, the user's view stays
    edit(sql_copy, "views/runs_overview.sql", "\nfrom wf.runs r", ",\n  r.owner as started_by\nfrom wf.runs r")
    report = install_sync(db, cron=False, sql=sql_copy)
    assert (report.routines, report.rebuilt) == (["views/runs_overview.sql"], [])
    with connect(db) as c:
        assert "started_by" in [col.name for col in c.execute("select * from wf.runs_overview limit 0").description]
        assert c.execute("select count(*) as n from public.my_failed").fetchone()["n"] == 0


def test_a_view_whose_columns_change_is_rebuilt_with_the_wf_views_that_read_it(db, sql_copy):
    (sql_copy / "views/zz_open_runs.sql").write_text(
        "-- a wf view that reads another\ncreate or replace view wf.zz_open_runs as\n"
        "select run_id, workflow from wf.runs_overview where finished_at is null;\n")
    install_sync(db, cron=False, sql=sql_copy)
    # the first column goes: `create or replace view` cannot take that
    edit(sql_copy, "views/runs_overview.sql", "  r.id as run_id,\n", "  r.id as run_id_renamed,\n  r.id as run_id,\n")
    report = install_sync(db, cron=False, sql=sql_copy)
    assert sorted(report.rebuilt) == ["views/runs_overview.sql", "views/zz_open_runs.sql"]
    with connect(db) as c:
        assert c.execute("select count(*) as n from wf.zz_open_runs").fetchone()["n"] == 0
        assert c.execute("select has_table_privilege('wf_reader', 'wf.runs_overview', 'select') as ok").fetchone()["ok"]


def test_a_view_change_that_would_drop_a_users_view_stops_the_install_and_names_it(db, sql_copy):
    with connect(db) as c:
        c.execute("create view public.my_failed as select run_id from wf.runs_overview")
    edit(sql_copy, "views/runs_overview.sql", "  r.id as run_id,\n", "  r.id as run_id_renamed,\n  r.id as run_id,\n")
    edit(sql_copy, "functions/backoff_delay.sql", "return ceil(v_delay)::int;", "return ceil(v_delay)::int;  -- edited")
    before = snapshot(db)
    with pytest.raises(InstallError, match=r"sql/views/runs_overview.sql: .*public.my_failed depend"):
        install_sync(db, cron=False, sql=sql_copy)
    assert snapshot(db) == before


def test_a_users_trigger_on_enqueue_trigger_survives_a_changed_function_file(db, sql_copy):
    with connect(db) as c:
        define(c, chain(n=1, name="on-row"))
        c.execute("create table public.thing (id int primary key)")
        c.execute("create trigger thing_added after insert on public.thing "
                  "for each row execute function wf.enqueue_trigger('on-row')")
    edit(sql_copy, "functions/enqueue_trigger.sql", "language plpgsql", "language plpgsql\n-- edited")
    assert install_sync(db, cron=False, sql=sql_copy).routines == ["functions/enqueue_trigger.sql"]
    with connect(db) as c:
        c.execute("insert into public.thing values (1)")
        assert c.execute("select count(*) as n from wf.runs where workflow = 'on-row'").fetchone()["n"] == 1


def test_a_view_that_fails_to_create_stops_the_install_and_leaves_the_database_as_it_was(db, sql_copy):
    edit(sql_copy, "views/stuck.sql", "  s.attempt,\n", "  s.no_such_column,\n")
    edit(sql_copy, "functions/backoff_delay.sql", "return ceil(v_delay)::int;", "return ceil(v_delay)::int;  -- edited")
    before = snapshot(db)
    with pytest.raises(InstallError, match=r'^sql/views/stuck.sql: UndefinedColumnError: column s.no_such_column'):
        install_sync(db, cron=False, sql=sql_copy)
    assert snapshot(db) == before


def test_a_function_with_a_bad_body_stops_the_install_naming_the_file(db, sql_copy):
    edit(sql_copy, "functions/setting.sql", "from wf.settings s", "from wf.no_such_table s")
    with pytest.raises(InstallError, match=r'^sql/functions/setting.sql: UndefinedTableError'):
        install_sync(db, cron=False, sql=sql_copy)


def test_a_routine_file_with_two_functions_is_refused_naming_the_file(db, sql_copy):
    extra = (sql_copy / "functions/uuid7.sql").read_text().replace("wf.uuid7(", "wf.uuid7_again(")
    with open(sql_copy / "functions/uuid7.sql", "a") as f:
        f.write(extra)
    before = snapshot(db)
    with pytest.raises(CatalogError, match=r"sql/functions/uuid7.sql: a file holds exactly one function .*uuid7_again"):
        install_sync(db, cron=False, sql=sql_copy)
    assert snapshot(db) == before


def test_a_function_named_unlike_its_file_is_refused(sql_copy):
    (sql_copy / "functions/uuid7.sql").rename(sql_copy / "functions/new_uuid.sql")
    with pytest.raises(CatalogError, match=r"new_uuid.sql: creates function wf\.uuid7, but the file is for"):
        load(sql_copy)


def test_a_migration_that_creates_a_function_is_refused(sql_copy):
    (sql_copy / "migrations/0011_helper.sql").write_text(
        "create function wf.helper() returns int language sql as $$ select 1 $$;\n")
    with pytest.raises(CatalogError, match=r"sql/migrations/0011_helper\.sql: creates function wf\.helper"):
        load(sql_copy)


def test_a_new_signature_without_a_migration_dropping_the_old_one_is_refused(db, sql_copy):
    edit(sql_copy, "functions/backoff_delay.sql", "(backoff jsonb, n int)", "(backoff jsonb, n bigint)")
    with pytest.raises(InstallError, match=r"sql/functions/backoff_delay.sql: wf.backoff_delay now exists with two "
                                           r"signatures; .* drops the old one in a migration"):
        install_sync(db, cron=False, sql=sql_copy)


def test_a_new_signature_installs_when_a_migration_drops_the_old_one(db, sql_copy):
    edit(sql_copy, "functions/backoff_delay.sql", "(backoff jsonb, n int)", "(backoff jsonb, n bigint)")
    edit(sql_copy, "functions/backoff_delay.sql", "wf.backoff_delay(jsonb, int)", "wf.backoff_delay(jsonb, bigint)")
    (sql_copy / "migrations/0099_backoff_delay_bigint.sql").write_text(
        "-- wf.backoff_delay takes a bigint\ndrop function wf.backoff_delay(jsonb, int);\n")
    report = install_sync(db, cron=False, sql=sql_copy)
    assert (report.applied, report.routines) == (["0099_backoff_delay_bigint.sql"], ["functions/backoff_delay.sql"])
    with connect(db) as c:
        assert c.execute("select to_regprocedure('wf.backoff_delay(jsonb, bigint)') is not null as new, "
                         "to_regprocedure('wf.backoff_delay(jsonb, int)') is null as old_gone").fetchone() == {
            "new": True, "old_gone": True}


def test_a_function_that_no_file_defines_is_reported_not_kept_silently(db):
    with connect(db) as c:
        c.execute("create function wf.old_helper(n int) returns int language sql as $$ select n $$")
    report = install_sync(db, cron=False)
    assert report.stale == ["wf.old_helper(integer)"]
    assert report.lines() == ["warning: wf.old_helper(integer) is in schema wf but no file in sql/ defines it: "
                              "drop it in a migration (or, if it is yours, move it out of schema wf)"]


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


def test_a_wf_schema_of_unknown_origin_is_refused(empty_db):
    with psycopg.connect(empty_db, autocommit=True) as c:
        c.execute(get_embedded_install_sql())
        c.execute(CATALOG.migrations[0].text)
    with pytest.raises(InstallError, match="not installed by `wf install`"):
        install_sync(empty_db, cron=False)


def test_a_database_installed_by_a_newer_wf_is_refused(db):
    with connect(db) as c:
        c.execute("insert into wf.migrations (version, name, checksum) values (9999, '9999_future.sql', 'x')")
    with pytest.raises(InstallError, match=r"has wf migration 9999_future\.sql, which this wf does not know"):
        install_sync(db, cron=False)


def test_roles_are_made_before_any_file_grants_to_them(empty_db, sql_copy):
    # roles belong to the cluster: a fresh cluster has none of wf's when the routines grant to them
    role = f"wf_test_{uuid.uuid4().hex[:8]}"
    with open(sql_copy / "roles.sql", "a") as f:
        f.write(f"create role {role} nologin;\n")
    with open(sql_copy / "functions/uuid7.sql", "a") as f:
        f.write(f"grant execute on function wf.uuid7() to {role};\n")
    try:
        install_sync(empty_db, cron=False, sql=sql_copy)
        with connect(empty_db) as c:
            assert c.execute("select has_function_privilege(%s, 'wf.uuid7()', 'execute') as ok",
                             (role,)).fetchone()["ok"]
    finally:
        with connect(empty_db) as c:
            c.execute(f"drop owned by {role}")
            c.execute(f"drop role if exists {role}")


def test_a_second_signature_of_a_wf_function_left_by_hand_is_reported(db):
    with connect(db) as c:
        c.execute("create function wf.backoff_delay(n int) returns int language sql as $$ select n $$")
    report = install_sync(db, cron=False)
    assert report.overloaded == ["wf.backoff_delay(integer), wf.backoff_delay(jsonb,integer)"]
    assert report.lines() == ["warning: schema wf has wf.backoff_delay(integer), wf.backoff_delay(jsonb,integer), but "
                              "one file defines one of them: drop the other in a migration"]
