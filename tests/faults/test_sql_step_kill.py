"""A sql step's effect happens exactly once (DESIGN §10): the registered function runs in the transaction
that records the step's success, so a worker SIGKILLed between the call and the commit leaves neither, and
the next attempt does it once.

The database notices the dead client within 50 ms (client_connection_check_interval) and rolls back; the
lease is simulated by making the message visible instead of waiting out the internal stage's 60 s."""

from __future__ import annotations

from wfproc import wait_final, wait_until
from wfsql import define, enqueue, make_visible

SETUP = """
create table public.bookings (id int primary key, note text);
create sequence public.booking_calls;
-- the first call makes its effect, then waits: the test kills the worker while it waits
create function public.book(args jsonb) returns jsonb language plpgsql as $$
begin
  insert into public.bookings values ((args ->> 'id')::int, args ->> 'note');
  if nextval('public.booking_calls') = 1 then
    perform pg_sleep(30);
  end if;
  return jsonb_build_object('booked', (args ->> 'id')::int);
end $$;
select wf.allow_sql_step('public.book(jsonb)');
"""


def effects(conn) -> int:
    return conn.execute("select count(*) as n from public.bookings").fetchone()["n"]


def waiting_in_the_function(conn) -> bool:
    return bool(conn.execute(
        """select 1 from pg_stat_activity
           where datname = current_database() and wait_event = 'PgSleep' and query like '%complete_sql%'""").fetchall())


def test_a_sql_steps_effect_happens_once_when_the_worker_dies_between_the_call_and_the_commit(db, conn, start_worker):
    conn.execute(SETUP)
    conn.execute(f"alter database {conn.info.dbname} set client_connection_check_interval = '50ms'")
    define(conn, {"name": "booking", "steps": [
        {"name": "book", "sql": "public.book", "args_template": {"id": "{{ booking_id }}", "note": "paid"}}]})
    run_id = enqueue(conn, "booking", {"booking_id": 7})

    worker = start_worker(db)
    wait_until(lambda: waiting_in_the_function(conn), 20, "the sql step's function to be running", worker.tail)
    assert effects(conn) == 0  # made, not committed
    worker.kill()
    wait_until(lambda: not waiting_in_the_function(conn), 10, "the dead worker's transaction to roll back")
    assert effects(conn) == 0
    assert conn.execute("select status, attempt from wf.steps where run_id = %s", (run_id,)).fetchone() == {
        "status": "running", "attempt": 1}

    make_visible(conn, "_wf")  # the lost attempt's lease runs out
    worker = start_worker(db)
    assert wait_final(conn, run_id, 30, worker) == {run_id: "completed"}
    assert effects(conn) == 1
    assert conn.execute("select nextval('public.booking_calls') - 1 as calls").fetchone()["calls"] == 2
    step = conn.execute("select attempt, output from wf.steps where run_id = %s", (run_id,)).fetchone()
    assert step == {"attempt": 2, "output": {"booked": 7}}
    kinds = [r["kind"] for r in conn.execute(
        "select kind from wf.events where run_id = %s and step = 'book' order by id", (run_id,))]
    assert kinds == ["started", "attempt_lost", "started", "succeeded"]
