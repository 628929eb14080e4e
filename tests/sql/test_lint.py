"""Static checks of the wf schema: plpgsql_check, the pgmq API it uses, privileges, search_path."""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row
from wfsql import chain, claim, complete, define, enqueue

# the pgmq API Supabase ships (pgmq 1.4.4): nothing newer may be called unguarded (README, "Running on Supabase")
PGMQ_144_API = {"create", "send", "send_batch", "read", "archive", "delete", "set_vt", "metrics",
                "metrics_all", "list_queues", "purge_queue", "drop_queue"}


@pytest.fixture(scope="module")
def cron_conn(cron_db):
    """cron_db holds the cron schema, so wf.schedule's dynamic SQL resolves."""
    with psycopg.connect(cron_db, autocommit=True, row_factory=dict_row) as c:
        c.execute("create extension if not exists plpgsql_check")
        yield c


def test_every_plpgsql_function_passes_plpgsql_check(cron_conn):
    rows = cron_conn.execute(
        """select p.oid::regprocedure::text as fn, r.level, r.lineno, r.message, r.detail
           from pg_proc p
           join pg_namespace n on n.oid = p.pronamespace
           join pg_language l on l.oid = p.prolang
           cross join lateral plpgsql_check_function_tb(
             p.oid,
             -- a trigger function needs a table to check against: any table with a primary key
             case when p.prorettype = 'trigger'::regtype then 'wf.schedules'::regclass else 0 end,
             fatal_errors => false, other_warnings => true, extra_warnings => true) r
           where n.nspname = 'wf' and l.lanname = 'plpgsql'
           order by 1, r.lineno"""
    ).fetchall()
    assert rows == [], "\n".join(
        f"{r['fn']} line {r['lineno']}: {r['level']}: {r['message']} {r['detail'] or ''}" for r in rows)


def test_plpgsql_check_covers_every_plpgsql_function(cron_conn):
    checked = cron_conn.execute(
        """select count(*) as n from pg_proc p join pg_language l on l.oid = p.prolang
           where p.pronamespace = 'wf'::regnamespace and l.lanname = 'plpgsql'"""
    ).fetchone()["n"]
    assert checked >= 20  # the API, the helpers and the trigger function


def pgmq_calls(conn) -> dict[str, set[str]]:
    """pgmq function -> the wf functions and views that call it."""
    sources = conn.execute(
        """select p.oid::regprocedure::text as name, p.prosrc as body
           from pg_proc p where p.pronamespace = 'wf'::regnamespace
           union all
           select 'view wf.' || c.relname, pg_get_viewdef(c.oid)
           from pg_class c where c.relnamespace = 'wf'::regnamespace and c.relkind = 'v'"""
    ).fetchall()
    calls: dict[str, set[str]] = {}
    for row in sources:
        for fn in re.findall(r"\bpgmq\.(\w+)\s*\(", row["body"]):
            calls.setdefault(fn, set()).add(row["name"])
    return calls


def test_wf_calls_only_the_pgmq_1_4_4_api(shared_conn):
    calls = pgmq_calls(shared_conn)
    assert {"send", "read", "archive", "set_vt", "create", "metrics"} <= set(calls), calls
    outside = {fn: sorted(users) for fn, users in calls.items() if fn not in PGMQ_144_API}
    assert outside == {}, f"pgmq functions outside the 1.4.4 API: {outside}"


def test_migrations_and_access_call_only_the_pgmq_1_4_4_api():
    from wf.catalog import load

    catalog = load()
    texts = [m.text for m in catalog.migrations] + [catalog.access]
    used = {fn for text in texts for fn in re.findall(r"\bpgmq\.(\w+)\s*\(", text)}
    assert "create" in used and used - PGMQ_144_API == set()


# how many arguments each of those takes in 1.4.4 (delays are whole seconds: no timestamptz
# and no headers arguments, which came later)
PGMQ_144_ARITY = {"create": {1}, "send": {2, 3}, "send_batch": {2, 3}, "read": {3}, "archive": {2},
                  "delete": {2}, "set_vt": {3}, "metrics": {1}, "metrics_all": {0}, "list_queues": {0},
                  "purge_queue": {1}, "drop_queue": {1}}


def call_arity(body: str, open_paren: int) -> int:
    """The number of top-level arguments of the call whose `(` is at open_paren."""
    depth, commas, empty = 0, 0, True
    for ch in body[open_paren + 1:]:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return 0 if empty else commas + 1
            depth -= 1
        elif ch == "," and depth == 0:
            commas += 1
        if not ch.isspace():
            empty = False
    raise AssertionError("unbalanced call")


def test_wf_calls_pgmq_with_the_1_4_4_argument_counts(shared_conn):
    rows = shared_conn.execute(
        """select p.oid::regprocedure::text as name, p.prosrc as body
           from pg_proc p where p.pronamespace = 'wf'::regnamespace""").fetchall()
    wrong = [(row["name"], m.group(1), call_arity(row["body"], m.end() - 1))
             for row in rows for m in re.finditer(r"\bpgmq\.(\w+)\s*\(", row["body"])
             if call_arity(row["body"], m.end() - 1) not in PGMQ_144_ARITY.get(m.group(1), set())]
    assert wrong == []


def test_nothing_in_schema_wf_is_executable_by_public(shared_conn):
    rows = shared_conn.execute(
        """select p.oid::regprocedure::text as fn from pg_proc p
           where p.pronamespace = 'wf'::regnamespace
             and has_function_privilege('public', p.oid, 'execute')
           order by 1"""
    ).fetchall()
    assert [r["fn"] for r in rows] == []


def test_no_function_in_schema_wf_has_a_public_grant_in_its_acl(shared_conn):
    rows = shared_conn.execute(
        """select p.oid::regprocedure::text as fn from pg_proc p
           where p.pronamespace = 'wf'::regnamespace
             and (p.proacl is null  -- null means the default: execute for public
                  or exists (select 1 from aclexplode(p.proacl) a where a.grantee = 0))
           order by 1"""
    ).fetchall()
    assert [r["fn"] for r in rows] == []


def test_no_table_or_view_in_schema_wf_is_readable_by_public(shared_conn):
    rows = shared_conn.execute(
        """select c.oid::regclass::text as rel from pg_class c
           where c.relnamespace = 'wf'::regnamespace and c.relkind in ('r', 'v', 'p')
             and has_table_privilege('public', c.oid, 'select, insert, update, delete')
           order by 1"""
    ).fetchall()
    assert [r["rel"] for r in rows] == []


def test_every_wf_function_pins_an_empty_search_path(shared_conn):
    rows = shared_conn.execute(
        """select p.oid::regprocedure::text as fn, p.proconfig from pg_proc p
           where p.pronamespace = 'wf'::regnamespace
             and not coalesce('search_path=""' = any (p.proconfig), false)
           order by 1"""
    ).fetchall()
    assert rows == []



def test_public_has_no_usage_on_schema_wf(shared_conn):
    assert shared_conn.execute("select has_schema_privilege('public', 'wf', 'usage') as u").fetchone()["u"] is False


def test_wf_worker_can_claim_and_answer_but_not_start_runs(conn):
    define(conn, chain(n=1))
    enqueue(conn, "chain")
    with conn.transaction():
        conn.execute("set local role wf_worker")
        [task] = claim(conn, "echo")
        assert complete(conn, task)
    with conn.transaction(), pytest.raises(errors.InsufficientPrivilege):
        conn.execute("set local role wf_worker")
        enqueue(conn, "chain")


def test_wf_worker_cannot_touch_the_tables(conn):
    with conn.transaction(), pytest.raises(errors.InsufficientPrivilege):
        conn.execute("set local role wf_worker")
        conn.execute("update wf.steps set status = 'succeeded'")


# ---- the layout of sql/ (CONTRIBUTING.md, "How the SQL is laid out") ----------------------


def test_every_function_and_view_in_schema_wf_comes_from_its_own_file(shared_conn):
    from wf.catalog import load

    catalog = load()  # refuses two routines in a file, a name unlike its file, a function in a migration
    installed = shared_conn.execute(
        """select array_agg(p.proname::text order by p.proname) as functions,
                  (select array_agg(c.relname::text order by c.relname) from pg_class c
                   where c.relnamespace = 'wf'::regnamespace and c.relkind = 'v') as views
           from pg_proc p where p.pronamespace = 'wf'::regnamespace""").fetchone()
    assert installed["functions"] == sorted(f.name for f in catalog.functions)
    assert installed["views"] == sorted(v.name for v in catalog.views)


def test_every_routine_file_opens_with_a_header_naming_its_routine():
    from wf.catalog import load

    missing = [r.path for r in load().routines if not r.text.startswith(f"-- wf.{r.name}")]
    assert missing == [], "start each file with `-- wf.<name>: what it does and why`"


def test_every_routine_file_makes_its_own_grants():
    from wf.catalog import load

    catalog = load()
    no_revoke = [f.path for f in catalog.functions if f"revoke all on function wf.{f.name}(" not in f.text]
    no_grant = [v.path for v in catalog.views if f"revoke all on wf.{v.name} from public" not in v.text]
    assert (no_revoke, no_grant) == ([], [])
