"""wf.enqueue_trigger on table changes; wf.schedule / wf.unschedule through pg_cron."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from wfsql import chain, counts, define

# --- wf.enqueue_trigger -------------------------------------------------------------------------


@pytest.fixture
def proposal(conn):
    """A table whose inserts start `on-proposal` (which needs the row's title)."""
    define(conn, {"name": "on-proposal", "required_fields": ["id"], "steps": [
        {"name": "notify", "function": "echo", "action": "go", "payload_template": {"t": "{{ title }}"}}]})
    conn.execute("create table public.proposal (id int primary key, title text, host_id text)")
    conn.execute("""create trigger proposal_created after insert on public.proposal
                    for each row execute function wf.enqueue_trigger('on-proposal')""")
    return conn


def test_insert_starts_a_run_with_the_row_as_input(proposal):
    proposal.execute("insert into public.proposal values (1, 'Loft', 'h-1')")
    [run] = proposal.execute("select workflow, status, input from wf.runs").fetchall()
    assert (run["workflow"], run["status"]) == ("on-proposal", "pending")
    assert run["input"] == {"id": 1, "title": "Loft", "host_id": "h-1",
                            "_op": "INSERT", "_table": "public.proposal", "_old": None}


def test_trigger_idempotency_key_names_table_key_operation_and_transaction(proposal):
    with proposal.transaction():
        proposal.execute("insert into public.proposal values (7, 'Loft', 'h-1')")
        txid = proposal.execute("select txid_current() as x").fetchone()["x"]
    [run] = proposal.execute("select idempotency_key from wf.runs").fetchall()
    assert run["idempotency_key"] == f"public.proposal:7:INSERT:{txid}"


def test_each_inserted_row_starts_its_own_run(proposal):
    proposal.execute("insert into public.proposal select g, 't' || g, 'h' from generate_series(1, 3) g")
    rows = proposal.execute("select input ->> 'id' as id from wf.runs order by 1").fetchall()
    assert [r["id"] for r in rows] == ["1", "2", "3"]


def test_update_trigger_passes_the_old_row(proposal):
    proposal.execute("""create trigger proposal_changed after update on public.proposal
                        for each row execute function wf.enqueue_trigger('on-proposal')""")
    proposal.execute("insert into public.proposal values (1, 'Loft', 'h-1')")
    proposal.execute("update public.proposal set title = 'Loft 2' where id = 1")
    [run] = proposal.execute("select input from wf.runs where input ->> '_op' = 'UPDATE'").fetchall()
    assert run["input"]["title"] == "Loft 2"
    assert run["input"]["_old"] == {"id": 1, "title": "Loft", "host_id": "h-1"}


def test_insert_fails_when_the_row_lacks_what_the_workflow_needs(proposal):
    define(proposal, {"name": "mail-host", "steps": [
        {"name": "mail", "function": "echo", "action": "go", "payload_template": {"to": "{{ host_email }}"}}]})
    proposal.execute("""create trigger proposal_mail after insert on public.proposal
                        for each row execute function wf.enqueue_trigger('mail-host')""")
    message = r"workflow mail-host: input is missing variable\(s\) host_email"
    with pytest.raises(errors.InvalidParameterValue, match=message):
        proposal.execute("insert into public.proposal values (1, 'Loft', 'h-1')")
    assert counts(proposal, "public.proposal", "wf.runs") == {"public.proposal": 0, "wf.runs": 0}


def test_trigger_without_a_workflow_argument_is_rejected(conn):
    conn.execute("create table public.t (id int primary key)")
    conn.execute("create trigger t after insert on public.t for each row execute function wf.enqueue_trigger()")
    with pytest.raises(errors.InvalidParameterValue, match=r"wf\.enqueue_trigger on public\.t: pass the workflow name"):
        conn.execute("insert into public.t values (1)")


def test_statement_level_trigger_is_rejected(conn):
    define(conn, chain())
    conn.execute("create table public.t (id int primary key)")
    conn.execute("""create trigger t after insert on public.t
                    for each statement execute function wf.enqueue_trigger('chain')""")
    with pytest.raises(errors.InvalidParameterValue, match="must be a FOR EACH ROW trigger"):
        conn.execute("insert into public.t values (1)")


# --- wf.schedule (pg_cron lives in the shared cron_db: every test cleans up after itself) --------


@pytest.fixture
def cron(cron_db) -> Iterator[tuple[psycopg.Connection, str]]:
    """A connection to cron_db and a workflow of its own; removes its schedules, runs and
    definition afterwards."""
    workflow = f"cron-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cron_db, autocommit=True, row_factory=dict_row) as c:
        define(c, chain(workflow, n=1, function="cron-echo"))
        try:
            yield c, workflow
        finally:
            c.execute("select wf.unschedule(name) from wf.schedules where workflow = %s", (workflow,))
            c.execute("delete from cron.job where jobname like %s", (f"wf:{workflow}%",))
            runs = [r["id"] for r in c.execute("select id from wf.runs where workflow = %s", (workflow,))]
            c.execute("delete from pgmq.q_wf_cron_echo where (message ->> 'run_id')::uuid = any (%s)", (runs,))
            c.execute("delete from wf.events where run_id = any (%s)", (runs,))
            c.execute("delete from wf.runs where workflow = %s", (workflow,))
            for table in ("wf.definition_steps", "wf.definitions"):
                c.execute(f"delete from {table} where workflow = %s", (workflow,))
            c.execute("delete from wf.workflows where name = %s", (workflow,))


def cron_job(c: psycopg.Connection, name: str) -> dict | None:
    return c.execute(
        "select jobid, schedule, command, database from cron.job where jobname = %s", (f"wf:{name}",)
    ).fetchone()


def test_schedule_creates_a_pg_cron_job(cron):
    c, workflow = cron
    job_id = c.execute("select wf.schedule(%s, '5 4 * * *', %s, %s) as id",
                       (workflow, workflow, Jsonb({"a": 1}))).fetchone()["id"]
    job = cron_job(c, workflow)
    assert job == {"jobid": job_id, "schedule": "5 4 * * *",
                   "command": f"select wf.fire_schedule('{workflow}')", "database": "wf_cron"}
    stored = c.execute("select cron, workflow, input from wf.schedules where name = %s", (workflow,)).fetchone()
    assert stored == {"cron": "5 4 * * *", "workflow": workflow, "input": {"a": 1}}


def test_schedule_again_replaces_the_job(cron):
    c, workflow = cron
    c.execute("select wf.schedule(%s, '5 4 * * *', %s)", (workflow, workflow))
    c.execute("select wf.schedule(%s, '0 6 * * 1', %s)", (workflow, workflow))
    [job] = c.execute("select schedule from cron.job where jobname = %s", (f"wf:{workflow}",)).fetchall()
    assert job["schedule"] == "0 6 * * 1"


def test_firing_twice_in_the_same_minute_enqueues_once(cron):
    c, workflow = cron
    c.execute("select wf.schedule(%s, '5 4 * * *', %s, %s)", (workflow, workflow, Jsonb({"a": 1})))
    command = cron_job(c, workflow)["command"]
    for _ in range(3):  # retried only if the two firings straddled a minute boundary
        minute = c.execute("select date_trunc('minute', now()) as m").fetchone()["m"]
        first = c.execute(command).fetchone()["fire_schedule"]
        second = c.execute(command).fetchone()["fire_schedule"]
        if c.execute("select date_trunc('minute', now()) as m").fetchone()["m"] == minute:
            break
    assert first == second
    run = c.execute("select input, idempotency_key from wf.runs where id = %s", (first,)).fetchone()
    assert run["input"] == {"a": 1}
    assert run["idempotency_key"] == f"schedule:{workflow}:{minute.astimezone(UTC):%Y-%m-%dT%H:%M}Z"


def test_unschedule_removes_the_job(cron):
    c, workflow = cron
    c.execute("select wf.schedule(%s, '5 4 * * *', %s)", (workflow, workflow))
    assert c.execute("select wf.unschedule(%s) as ok", (workflow,)).fetchone()["ok"] is True
    assert cron_job(c, workflow) is None
    assert c.execute("select count(*) as n from wf.schedules where name = %s", (workflow,)).fetchone()["n"] == 0
    assert c.execute("select wf.unschedule(%s) as ok", (workflow,)).fetchone()["ok"] is False


def test_schedule_without_pg_cron_raises_55000(conn):
    define(conn, chain())
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="pg_cron is not installed in database"):
        conn.execute("select wf.schedule('nightly', '0 3 * * *', 'chain')")
    assert counts(conn, "wf.schedules") == {"wf.schedules": 0}


@pytest.mark.parametrize("name, cron_expr, workflow, input, error, message", [
    ("Bad Name", "* * * * *", "chain", {}, errors.InvalidParameterValue, "schedule name must match"),
    (None, "* * * * *", "chain", {}, errors.InvalidParameterValue, "schedule name must match .* got null"),
    ("nightly", None, "chain", {}, errors.InvalidParameterValue, "schedule nightly: cron must be a cron expression"),
    ("nightly", "* * * * *", "chain", [1], errors.InvalidParameterValue,
     "schedule nightly: input must be a JSON object"),
    ("nightly", "* * * * *", "nope", {}, errors.NoDataFound, "schedule nightly: unknown workflow nope"),
], ids=["bad_name", "null_name", "null_cron", "input_not_an_object", "unknown_workflow"])
def test_schedule_with_bad_arguments_is_rejected_naming_them(
    shared_conn, name, cron_expr, workflow, input, error, message
):
    define(shared_conn, chain())
    with pytest.raises(error, match=message):
        shared_conn.execute("select wf.schedule(%s, %s, %s, %s)", (name, cron_expr, workflow, Jsonb(input)))
