"""One catalog however you got there: a fresh install of HEAD, an upgrade from the released
0.1.0 and `supabase db push` of the generated migrations end with the same schema wf; runs and
users' objects of 0.1.0 survive the upgrade; workers of 0.1.0 keep working during it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
import pytest
from legacy import install_0_1_0, migrations_0_1_0
from pgmq.install import get_embedded_install_sql
from psycopg.rows import dict_row
from wf.catalog import load
from wf.install import RELEASE_0_1_0, InstallError, install_sync
from wfsql import chain, claim, complete, complete_batch, define, enqueue, run_status

REPO = Path(__file__).resolve().parents[2]
PG_DUMP = "/usr/lib/postgresql/15/bin/pg_dump"
# what the 0.1.0 worker calls (consumer/wf/worker.py and reports.py at f93f56f)
WORKER_API_0_1_0 = ["claim", "complete", "complete_batch", "fail", "extend", "skip", "tick", "tick_scheduled",
                    "worker_stages"]


def connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, row_factory=dict_row)


def schema_dump(dsn: str) -> str:
    """`pg_dump --schema-only --schema=wf`, without the random key of its \\restrict lines."""
    out = subprocess.run([PG_DUMP, "--schema-only", "--schema=wf", dsn], check=True, capture_output=True,
                         text=True).stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


@pytest.fixture
def fresh_dump(pg_server, empty_db) -> str:
    """A fresh install of HEAD, dumped (pgmq from the bundled SQL, as everywhere here)."""
    install_sync(empty_db, cron=False)
    return schema_dump(empty_db)


def test_upgrade_from_0_1_0_ends_with_the_catalog_of_a_fresh_install(fresh_dump, other_empty_db):
    install_0_1_0(other_empty_db)
    report = install_sync(other_empty_db, cron=False)
    # 0.1.0's migrations are adopted as the squashed baseline; the ones after it are applied
    after_baseline = [m.name for m in load().migrations if m.version > 10]
    assert (report.applied, report.adopted, report.stale) == (after_baseline, ["0010_baseline.sql"], [])
    assert schema_dump(other_empty_db) == fresh_dump
    assert install_sync(other_empty_db, cron=False).changed is False


def supabase_db_push(dsn: str) -> None:
    """What `supabase db push` does with supabase/migrations/ on a project with the pgmq extension:
    each file in version order, in a transaction of its own."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("set client_min_messages = warning")
        c.execute(get_embedded_install_sql())  # Supabase: `create extension pgmq`
        for path in sorted((REPO / "supabase/migrations").glob("*.sql")):
            with c.transaction():
                c.execute(path.read_text())


def test_supabase_db_push_ends_with_the_catalog_of_a_fresh_install(fresh_dump, other_empty_db):
    supabase_db_push(other_empty_db)
    assert schema_dump(other_empty_db) == fresh_dump


def test_wf_install_after_supabase_db_push_finds_nothing_to_do(other_empty_db):
    supabase_db_push(other_empty_db)
    report = install_sync(other_empty_db, cron=False)
    assert (report.changed, report.lines()) == (False, [])


def test_a_run_of_0_1_0_with_a_step_in_flight_completes_after_the_upgrade(empty_db):
    install_0_1_0(empty_db)
    with connect(empty_db) as c:
        define(c, chain(n=2))
        run_id = enqueue(c, "chain", {"k": "v"}, key="before-upgrade")
        [in_flight] = claim(c, "echo")
    install_sync(empty_db, cron=False)
    with connect(empty_db) as c:
        assert complete(c, in_flight)
        [task] = claim(c, "echo")
        assert (str(task["run_id"]), task["step"]) == (run_id, "s2")
        assert complete_batch(c, [task], [{}]) == 1
        assert run_status(c, run_id) == "completed"
        assert enqueue(c, "chain", {"k": "v"}, key="before-upgrade") == run_id


def worker_api(dsn: str) -> list[dict]:
    with connect(dsn) as c:
        return c.execute(
            """select p.proname, pg_get_function_arguments(p.oid) as args, pg_get_function_result(p.oid) as result,
                      p.proacl::text as acl
               from pg_proc p where p.pronamespace = 'wf'::regnamespace and p.proname = any (%s)
               order by 1""", (WORKER_API_0_1_0,)).fetchall()


def test_workers_of_0_1_0_keep_working_through_the_upgrade(empty_db, other_empty_db):
    # rolling upgrade: the functions a 0.1.0 worker calls keep their arguments and grants; a result
    # may only gain columns at its end (the worker reads columns by name: wf.claim gained kind,
    # not_before and offset_seconds in 0011)
    install_0_1_0(other_empty_db)
    install_sync(empty_db, cron=False)
    new, old = worker_api(empty_db), worker_api(other_empty_db)
    assert [(r["proname"], r["args"], r["acl"]) for r in new] == [(r["proname"], r["args"], r["acl"]) for r in old]
    for now, before in zip(new, old, strict=True):
        assert now["result"] == before["result"] or now["result"].startswith(before["result"].removesuffix(")") + ", ")
    assert [r["proname"] for r in new] == sorted(WORKER_API_0_1_0)


def test_a_users_trigger_and_view_of_0_1_0_survive_the_upgrade(empty_db):
    install_0_1_0(empty_db)
    with connect(empty_db) as c:
        define(c, chain(n=1, name="on-row"))
        c.execute("create table public.thing (id int primary key)")
        c.execute("create trigger thing_added after insert on public.thing "
                  "for each row execute function wf.enqueue_trigger('on-row')")
        c.execute("create view public.my_runs_per_workflow as "
                  "select workflow, count(*) as n from wf.runs_overview group by workflow")
    install_sync(empty_db, cron=False)
    with connect(empty_db) as c:
        c.execute("insert into public.thing values (1)")
        assert c.execute("select * from public.my_runs_per_workflow").fetchall() == [{"workflow": "on-row", "n": 1}]


def test_an_install_older_than_0_1_0_is_refused_with_what_to_do(empty_db):
    install_0_1_0(empty_db, upto=3)
    with pytest.raises(InstallError, match=r"has wf migrations 0001, 0002, 0003 but not 0004, .* upgrade it with "
                                           r"the wf release that has them \(0.1.0\) first"):
        install_sync(empty_db, cron=False)


def test_0_1_0_pushed_by_supabase_db_push_upgrades_to_the_catalog_of_a_fresh_install(fresh_dump, other_empty_db):
    # 0.1.0's supabase/migrations/ were its sql/ files named 2026010100NNNN_wf_<name>.sql; Supabase
    # records the versions it pushed in supabase_migrations.schema_migrations, wf.migrations stays empty
    with psycopg.connect(other_empty_db, autocommit=True) as c:
        c.execute("set client_min_messages = warning")
        c.execute(get_embedded_install_sql())
        c.execute("create schema supabase_migrations; "
                  "create table supabase_migrations.schema_migrations (version text primary key, name text)")
        for path in migrations_0_1_0():
            with c.transaction():
                c.execute(path.read_text())
                c.execute("insert into supabase_migrations.schema_migrations values (%s, %s)",
                          (f"2026010100{path.name[:4]}", f"wf_{path.name[5:-4]}"))
    report = install_sync(other_empty_db, cron=False)
    assert report.adopted == ["0010_baseline.sql"]
    assert schema_dump(other_empty_db) == fresh_dump


def test_the_installer_knows_the_migrations_of_0_1_0_by_name():
    assert tuple(p.name for p in migrations_0_1_0()) == RELEASE_0_1_0
