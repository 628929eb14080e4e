"""Run owners and row level security (sql/access.sql, sql/functions/grant_app_access.sql,
sql/views/my_runs.sql) on a stand-in for Supabase: a signed-in user reads only the runs they own;
wf's roles and the hot path see everything."""

from __future__ import annotations

import uuid

import pytest
from psycopg import errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from standin import add_auth_stand_in, signed_in
from wfsql import chain, claim, complete, define, enqueue

ALICE = str(uuid.UUID(int=0xA11CE))
BOB = str(uuid.UUID(int=0xB0B))


def start_as(conn, user: str | None, workflow: str = "chain", **kw) -> str:
    """What the workflows edge function does: the caller's claims, then wf.enqueue as the
    function's database role (here the superuser; wf_admin on a real deployment)."""
    with signed_in(conn, user, role=None):
        return enqueue(conn, workflow, **kw)


def owner_of(conn, run_id: str) -> str | None:
    row = conn.execute("select owner::text from wf.runs where id = %s", (run_id,)).fetchone()
    return row["owner"]


def visible_runs(conn, user: str | None, relation: str = "wf.my_runs", role: str = "authenticated") -> set[str]:
    column = "run_id" if relation == "wf.my_runs" else "id"
    with signed_in(conn, user, role=role):
        return {str(r[column]) for r in conn.execute(f"select {column} from {relation}").fetchall()}


@pytest.fixture
def two_users(supa):
    """Alice starts two runs, Bob one; one run has no owner (started from plain SQL)."""
    define(supa, chain(n=2))
    runs = {"alice": [start_as(supa, ALICE), start_as(supa, ALICE)], "bob": [start_as(supa, BOB)],
            "nobody": [start_as(supa, None)]}
    return supa, runs


def test_enqueue_records_the_signed_in_user_as_owner(two_users):
    conn, runs = two_users
    assert {owner_of(conn, r) for r in runs["alice"]} == {ALICE}
    assert owner_of(conn, runs["bob"][0]) == BOB
    assert owner_of(conn, runs["nobody"][0]) is None


def test_each_user_sees_only_their_own_runs_in_my_runs(two_users):
    conn, runs = two_users
    assert visible_runs(conn, ALICE) == set(runs["alice"])
    assert visible_runs(conn, BOB) == set(runs["bob"])


def test_row_level_security_itself_filters_the_runs_table(two_users):
    # not only the view's own owner filter: a direct select is filtered by the policy
    conn, runs = two_users
    assert visible_runs(conn, ALICE, "wf.runs") == set(runs["alice"])
    assert visible_runs(conn, BOB, "wf.runs") == set(runs["bob"])


def test_a_user_sees_only_the_steps_of_their_own_runs(two_users):
    conn, runs = two_users
    with signed_in(conn, BOB):
        rows = conn.execute("select distinct run_id::text from wf.steps").fetchall()
    assert {r["run_id"] for r in rows} == set(runs["bob"])


def test_my_runs_shows_progress_and_steps_newest_first(two_users):
    conn, runs = two_users
    [task] = claim(conn, "echo", 1)  # the oldest run's first step
    complete(conn, task, {"ok": 1})
    with signed_in(conn, ALICE):
        rows = conn.execute("select * from wf.my_runs").fetchall()
    assert [str(r["run_id"]) for r in rows] == runs["alice"][::-1]
    oldest = rows[-1]
    assert oldest["progress"] == "1/2"
    assert oldest["owner"] == uuid.UUID(ALICE)
    assert [(s["name"], s["status"]) for s in oldest["steps"]] == [("s1", "succeeded"), ("s2", "queued")]
    assert oldest["steps"][0]["output"] == {"ok": 1}


def test_a_signed_in_user_without_runs_and_a_request_without_claims_see_nothing(two_users):
    conn, _ = two_users
    assert visible_runs(conn, str(uuid.uuid4())) == set()
    assert visible_runs(conn, None) == set()
    assert visible_runs(conn, None, "wf.runs") == set()


def test_anon_sees_nothing(two_users):
    conn, _ = two_users
    for relation in ("wf.my_runs", "wf.runs", "wf.steps"):
        with pytest.raises(errors.InsufficientPrivilege):
            visible_runs(conn, None, relation, role="anon")


def test_wf_reader_and_the_table_owner_see_every_run(two_users):
    conn, runs = two_users
    everything = {r for rs in runs.values() for r in rs}
    with conn.transaction():
        conn.execute("set local role wf_reader")
        assert {str(r["run_id"]) for r in conn.execute("select run_id from wf.runs_overview").fetchall()} == everything
    # even with a user's claims in the session: the views run as their owner, who bypasses RLS
    with signed_in(conn, ALICE, role="wf_reader"):
        assert {str(r["run_id"]) for r in conn.execute("select run_id from wf.runs_overview").fetchall()} == everything
    assert {str(r["id"]) for r in conn.execute("select id from wf.runs").fetchall()} == everything


def test_the_hot_path_is_untouched_rls_is_not_forced(two_users):
    conn, runs = two_users
    rows = conn.execute(
        """select relname, relrowsecurity, relforcerowsecurity from pg_class
           where oid in ('wf.runs'::regclass, 'wf.steps'::regclass) order by 1""").fetchall()
    assert [(r["relname"], r["relrowsecurity"], r["relforcerowsecurity"]) for r in rows] == [
        ("runs", True, False), ("steps", True, False)]
    # the worker's role drives every owner's run, whoever is signed in on that session
    with conn.transaction():
        conn.execute("set local role wf_worker")
        tasks = claim(conn, "echo")
        assert {t["run_id"] for t in tasks} == {uuid.UUID(r) for rs in runs.values() for r in rs}
        assert all(complete(conn, t) for t in tasks)


def test_a_signed_in_user_cannot_start_change_or_read_history_directly(two_users):
    conn, runs = two_users
    with pytest.raises(errors.InsufficientPrivilege), signed_in(conn, ALICE):
        enqueue(conn, "chain")
    with pytest.raises(errors.InsufficientPrivilege), signed_in(conn, ALICE):
        conn.execute("update wf.runs set status = 'cancelled' where id = %s", (runs["alice"][0],))
    with pytest.raises(errors.InsufficientPrivilege), signed_in(conn, ALICE):
        conn.execute("select * from wf.events")
    with pytest.raises(errors.InsufficientPrivilege), signed_in(conn, ALICE):
        conn.execute("select idempotency_key from wf.runs")


def test_the_same_idempotency_key_returns_the_users_run(two_users):
    conn, _ = two_users
    first = start_as(conn, ALICE, key="k-1")
    assert start_as(conn, ALICE, key="k-1") == first
    assert owner_of(conn, first) == ALICE


def test_a_trigger_fired_by_a_signed_in_user_starts_a_run_they_own(supa):
    define(supa, chain(n=1))
    supa.execute("create table public.proposal (id int primary key, status text)")
    supa.execute("create trigger t after insert on public.proposal"
                 " for each row execute function wf.enqueue_trigger('chain')")
    with signed_in(supa, BOB, role=None):
        supa.execute("insert into public.proposal values (1, 'pending')")
    assert visible_runs(supa, BOB) == {r["id"] for r in supa.execute("select id::text from wf.runs").fetchall()}


def test_without_the_auth_schema_wf_works_and_runs_have_no_owner(db):
    from psycopg import connect

    with connect(db, autocommit=True, row_factory=dict_row) as conn:
        assert conn.execute("select to_regnamespace('auth') as n").fetchone()["n"] is None
        define(conn, chain(n=1))
        run_id = start_as(conn, ALICE)  # claims set, but no auth.uid() to read them
        assert owner_of(conn, run_id) is None
        [task] = claim(conn, "echo")
        assert complete(conn, task)
        assert conn.execute("select status from wf.runs where id = %s", (run_id,)).fetchone()["status"] == "completed"


def test_auth_added_after_wf_is_picked_up_when_a_run_starts(db):
    from psycopg import connect

    add_auth_stand_in(db)
    with connect(db, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("select wf.grant_app_access()")
        conn.execute("select wf.grant_app_access()")  # idempotent
        define(conn, chain(n=1))
        run_id = start_as(conn, ALICE)
        assert owner_of(conn, run_id) == ALICE
        assert visible_runs(conn, ALICE) == {run_id}
        assert visible_runs(conn, BOB) == set()


def test_a_run_enqueued_with_input_keeps_it_readable_for_its_owner(supa):
    define(supa, chain(n=1))
    with signed_in(supa, ALICE, role=None):
        run_id = supa.execute("select wf.enqueue('chain', %s) as id", (Jsonb({"a": 1}),)).fetchone()["id"]
    with signed_in(supa, ALICE):
        row = supa.execute("select input from wf.my_runs where run_id = %s", (run_id,)).fetchone()
    assert row["input"] == {"a": 1}
