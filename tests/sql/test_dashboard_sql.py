"""What the web dashboard reads (issue 13): wf.run_inputs (keyset paging on the indexes of migration
0018), wf.run_steps (every step of a run, for the graph), wf.stage_series (per minute: wf.tick's samples
of depth and calls in flight, outcomes and p95 from wf.events), and the live updates on channel
wf_changes (wf.notify_changes, a statement trigger on wf.events)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import asyncpg
import pytest
from psycopg import errors, sql
from psycopg.types.json import Jsonb
from wfsql import chain, claim, complete, define, enqueue, fail

DASHBOARD_VIEWS = ["run_inputs", "run_steps", "stage_series"]

# the dashboard's keyset queries: the next page after ($2, $3), newest first, with each filter
KEYSET = {
    "no filter": ("select run_id from wf.run_inputs where (created_at, run_id) < ($1, $2) "
                  "order by created_at desc, run_id desc limit 50"),
    "status": ("select run_id from wf.run_inputs where status = $3 and (created_at, run_id) < ($1, $2) "
               "order by created_at desc, run_id desc limit 50"),
    "workflow": ("select run_id from wf.run_inputs where workflow = $3 and (created_at, run_id) < ($1, $2) "
                 "order by created_at desc, run_id desc limit 50"),
    "correlation_id": ("select run_id from wf.run_inputs where correlation_id = $3 and (created_at, run_id) < ($1, $2) "
                       "order by created_at desc, run_id desc limit 50"),
}


def tick(conn) -> dict[str, Any]:
    return conn.execute("select wf.tick() as r").fetchone()["r"]


def samples(conn) -> list[dict[str, Any]]:
    return conn.execute("select stage, depth, in_flight from wf.stage_samples order by at, stage").fetchall()


# ---- wf.run_inputs ------------------------------------------------------------------------------


def test_run_inputs_keyset_paging_returns_the_next_page_without_repeats(conn):
    define(conn, chain(n=1))
    runs = [enqueue(conn, "chain", {"n": i}) for i in range(7)]
    # four runs share one created_at: the run id orders them
    conn.execute("update wf.runs set created_at = now() - interval '1 minute' where id = any(%s::uuid[])", (runs[2:6],))
    page, after, pages = 3, None, []
    while True:
        rows = conn.execute(
            """select run_id::text, created_at from wf.run_inputs
               where %(t)s::timestamptz is null or (created_at, run_id) < (%(t)s, %(id)s::uuid)
               order by created_at desc, run_id desc limit %(n)s""",
            {"t": after and after["created_at"], "id": after and after["run_id"], "n": page}).fetchall()
        if not rows:
            break
        pages.append([r["run_id"] for r in rows])
        after = rows[-1]
    seen = [run for p in pages for run in p]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(seen) == sorted(runs) and len(set(seen)) == 7
    newest_first = conn.execute("select id::text from wf.runs order by created_at desc, id desc").fetchall()
    assert seen == [r["id"] for r in newest_first]


@pytest.mark.parametrize("filtered", KEYSET)
def test_the_keyset_queries_of_run_inputs_use_an_index_not_a_seq_scan(conn, filtered):
    for name in ("orders", "refunds", "emails"):
        define(conn, chain(name=name, n=1))
    conn.execute("""select wf.enqueue((array['orders', 'refunds', 'emails'])[n % 3 + 1], jsonb_build_object('n', n),
                                      null, null, 'c-' || (n % 10))
                    from generate_series(1, 3000) n""")
    conn.execute("update wf.runs set status = 'completed', finished_at = now() where (input ->> 'n')::int % 10 <> 0")
    conn.execute("analyze wf.runs")
    value = {"no filter": None, "status": "running", "workflow": "refunds", "correlation_id": "c-7"}[filtered]
    # a generic plan, as a prepared statement gets after a few runs: the worst case for the planner
    conn.execute("set plan_cache_mode = force_generic_plan")
    conn.execute(f"prepare page(timestamptz, uuid, text) as {KEYSET[filtered]}")
    rows = conn.execute(sql.SQL("explain (costs off) execute page(now(), 'ffffffff-ffff-ffff-ffff-ffffffffffff', {})")
                        .format(sql.Literal(value))).fetchall()
    plan = "\n".join(r["QUERY PLAN"] for r in rows)
    # (on 1M runs each walks its index backwards and stops after the page; on a few thousand the
    # planner may read a filter's few matches by bitmap and sort them: an index either way)
    assert "Seq Scan" not in plan, plan
    assert re.search(r"Index (Only )?Scan (Backward )?(using|on) runs_", plan), plan


# ---- wf.run_steps -------------------------------------------------------------------------------


def test_run_steps_lists_waiting_steps_map_items_and_compensations_with_their_depends_on(conn):
    define(conn, {"name": "fan", "steps": [
        {"name": "charge", "function": "echo", "action": "charge",
         "compensate": {"function": "echo", "action": "refund"}},
        {"name": "send", "function": "echo", "action": "send", "for_each": "{{ channels }}", "depends_on": ["charge"]},
        {"name": "after", "function": "echo", "action": "after", "depends_on": ["send"]}]})
    run_id = enqueue(conn, "fan", {"channels": ["sms", "email"]})
    [charge] = claim(conn, "echo")
    complete(conn, charge)
    [send] = claim(conn, "echo")
    conn.execute("select wf.expand_map(%s, %s, %s, %s)", (send["run_id"], send["step"], send["attempt"],
                                                          Jsonb(["sms", "email"])))
    rows = conn.execute("select * from wf.run_steps where run_id = %s order by position", (run_id,)).fetchall()
    got = [(r["position"], r["name"], r["status"], r["depends_on"], r["map_step"], r["item"], r["item_value"],
            r["compensates"]) for r in rows]
    assert got == [
        (0, "charge", "succeeded", [], None, None, None, None),
        # no step row until the run fails: from the definition, waiting
        (1, "charge:compensate", "waiting", [], None, None, None, "charge"),
        (2, "send", "running", ["charge"], None, None, None, None),
        # an item has its map step's definition row
        (3, "send[0]", "queued", ["charge"], "send", 0, "sms", None),
        (4, "send[1]", "queued", ["charge"], "send", 1, "email", None),
        (5, "after", "waiting", ["send"], None, None, None, None),
    ]
    by_name = {r["name"]: r for r in rows}
    assert (by_name["send"]["kind"], by_name["send"]["for_each"]) == ("function", "{{ channels }}")
    assert (by_name["charge:compensate"]["action"], by_name["charge:compensate"]["attempt"]) == ("refund", 0)
    assert by_name["charge"]["attempt"] == 1 and by_name["charge"]["finished_at"] is not None


# ---- wf.stage_series and wf.tick's samples ------------------------------------------------------


def test_stage_series_shows_a_minutes_outcomes_p95_and_the_ticks_sample(conn):
    define(conn, chain(n=1, max_retries=2))
    first, second, _ = (enqueue(conn, "chain") for _ in range(3))
    tasks = {str(t["run_id"]): t for t in claim(conn, "echo", 2)}
    complete(conn, tasks[first])
    fail(conn, tasks[second], "upstream 503", http_status=503)  # retrying: a failed attempt
    assert tick(conn)["sampled"] == 2  # echo and _wf
    # simulate time: all of it happened five minutes ago, in one minute
    minute = conn.execute("select date_trunc('minute', now()) - interval '5 minutes' as m").fetchone()["m"]
    conn.execute("update wf.events set at = %s + interval '10 seconds', detail = detail || jsonb_build_object("
                 "'duration_ms', case when run_id = %s then 100 else 200 end) "
                 "where kind in ('succeeded', 'retrying')", (minute, first))
    conn.execute("update wf.stage_samples set at = %s + interval '20 seconds'", (minute,))
    rows = conn.execute("select * from wf.stage_series where stage = 'echo'").fetchall()
    # p95 of 100 and 200 ms: 200, read from a histogram of 5% buckets (within 2.5%)
    assert abs(rows[0].pop("p95_ms") - 200) <= 5
    # depth: the third run's message and the retry's (not yet visible); in flight: nothing running
    assert rows == [{"stage": "echo", "minute": minute, "depth": 2, "in_flight": 0, "succeeded": 1, "failed": 1}]


def test_stage_series_takes_a_minutes_latest_sample_and_only_the_last_hour(conn):
    minute = conn.execute("select date_trunc('minute', now()) - interval '3 minutes' as m").fetchone()["m"]
    conn.execute("""insert into wf.stage_samples (stage, at, depth, in_flight) values
                      ('echo', %(m)s + interval '5 seconds', 7, 1), ('echo', %(m)s + interval '40 seconds', 4, 2),
                      ('echo', %(m)s - interval '2 hours', 9, 9)""", {"m": minute})
    rows = conn.execute("select * from wf.stage_series").fetchall()
    assert rows == [{"stage": "echo", "minute": minute, "depth": 4, "in_flight": 2, "succeeded": 0, "failed": 0,
                     "p95_ms": None}]


def test_tick_samples_each_stage_at_most_once_per_30_seconds(conn):
    define(conn, chain(n=2))
    enqueue(conn, "chain")
    claim(conn, "echo")
    assert tick(conn)["sampled"] == 2
    assert tick(conn)["sampled"] == 0
    conn.execute("update wf.stage_samples set at = at - interval '29 seconds'")
    assert tick(conn)["sampled"] == 0
    conn.execute("update wf.stage_samples set at = at - interval '2 seconds'")
    assert tick(conn)["sampled"] == 2
    # the claimed message stays in the queue (invisible) until its attempt is answered
    assert samples(conn)[-2:] == [{"stage": "_wf", "depth": 0, "in_flight": 0},
                                  {"stage": "echo", "depth": 1, "in_flight": 1}]


def test_a_tick_samples_the_depth_of_every_priority_band(conn):
    define(conn, chain(n=1))
    conn.execute("select wf.enqueue('chain', '{}', null, null, null, 10)")
    conn.execute("select wf.enqueue('chain', '{}', null, null, null, -10)")
    enqueue(conn, "chain")
    tick(conn)
    assert {s["stage"]: s["depth"] for s in samples(conn)} == {"_wf": 0, "echo": 3}


def test_tick_deletes_samples_older_than_a_day(conn):
    define(conn, chain(n=1))
    tick(conn)
    conn.execute("update wf.stage_samples set at = at - interval '1 day 1 second'")
    conn.execute("insert into wf.stage_samples (stage, at, depth, in_flight) "
                 "values ('echo', now() - interval '23 hours', 1, 0)")
    tick(conn)
    ages = conn.execute("select stage, now() - at < interval '1 day' as recent from wf.stage_samples").fetchall()
    assert len(ages) == 3 and all(a["recent"] for a in ages)


# ---- live updates: wf_changes -------------------------------------------------------------------


async def listen(dsn: str) -> tuple[asyncpg.Connection, asyncio.Queue[str]]:
    listener = await asyncpg.connect(dsn)
    payloads: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("wf_changes", lambda _c, _pid, _channel, payload: payloads.put_nowait(payload))
    return listener, payloads


async def test_an_insert_into_events_notifies_wf_changes_with_the_run_id(db):
    listener, payloads = await listen(db)
    writer = await asyncpg.connect(db)
    try:
        await writer.execute("select wf.define($1::jsonb)", json.dumps(chain(n=1)))
        run_id = str(await writer.fetchval("select wf.enqueue('chain', '{}')"))
        assert await asyncio.wait_for(payloads.get(), 5) == run_id
        other = str(uuid.uuid4())
        await writer.execute("insert into wf.events (run_id, kind) values ($1, 'a'), ($1, 'b'), ($2, 'c')",
                             uuid.UUID(run_id), uuid.UUID(other))
        assert sorted((await asyncio.wait_for(payloads.get(), 5)).split(",")) == sorted([run_id, other])
        assert payloads.empty()
    finally:
        await writer.close()
        await listener.close()


async def test_a_statement_whose_run_ids_do_not_fit_a_payload_notifies_a_star(db):
    listener, payloads = await listen(db)
    writer = await asyncpg.connect(db)
    try:
        # 213 ids of 36 characters and their commas fit in 7,900 bytes, 214 do not
        many = "insert into wf.events (run_id, kind) select gen_random_uuid(), 'x' from generate_series(1, $1)"
        await writer.execute(many, 213)
        assert len((await asyncio.wait_for(payloads.get(), 5)).split(",")) == 213
        await writer.execute(many, 214)
        assert await asyncio.wait_for(payloads.get(), 5) == "*"
    finally:
        await writer.close()
        await listener.close()


# ---- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("view", DASHBOARD_VIEWS)
def test_the_dashboard_views_are_readable_by_wf_reader_and_say_what_they_are_for(conn, view):
    define(conn, chain(n=1))
    enqueue(conn, "chain")
    tick(conn)
    with conn.transaction():
        conn.execute("set local role wf_reader")
        assert conn.execute(f"select * from wf.{view}").fetchall()
    comment = conn.execute("select obj_description(%s::regclass, 'pg_class') as c", (f"wf.{view}",)).fetchone()["c"]
    assert comment and len(comment) > 20


@pytest.mark.parametrize("view", DASHBOARD_VIEWS)
def test_the_dashboard_views_are_not_readable_by_wf_worker(shared_conn, view):
    with shared_conn.transaction(), pytest.raises(errors.InsufficientPrivilege):
        shared_conn.execute("set local role wf_worker")
        shared_conn.execute(f"select * from wf.{view}")


def test_dead_letters_show_a_step_dead_again_after_a_retry_once_and_a_retried_one_not_at_all(conn):
    define(conn, chain("one", 1, max_retries=0))
    again, healed = enqueue(conn, "one"), enqueue(conn, "one")
    for task in claim(conn, "echo"):
        fail(conn, task, "down")
    conn.execute("select wf.retry(%s), wf.retry(%s)", (again, healed))
    for task in claim(conn, "echo"):
        if task["run_id"] == uuid.UUID(again):
            fail(conn, task, "down again")
        else:
            complete(conn, task, {})
    rows = conn.execute("select run_id::text, error, seq from wf.dead_letters").fetchall()
    assert [(r["run_id"], r["error"]) for r in rows] == [(again, "down again")]
    assert [r["kind"] for r in conn.execute(
        "select kind from wf.events where id = %s", (rows[0]["seq"],)).fetchall()] == ["dead"]
