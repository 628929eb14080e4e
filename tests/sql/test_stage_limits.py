"""Stage limits across workers (DESIGN §11, wf.configure_stage): wf.claim starts no more than the stage's
max_concurrency in flight and its rate_per_second (with a burst), whoever claims; a lost attempt's room
comes back; a stage without limits pays nothing for them."""

from __future__ import annotations

import pytest
from psycopg import errors
from wfsql import chain, claim, complete, counts, define, enqueue, make_visible


def queued(conn, n: int) -> None:
    define(conn, chain(n=1))
    for _ in range(n):
        enqueue(conn, "chain")


def test_max_concurrency_caps_what_is_in_flight_across_claims(conn):
    queued(conn, 10)
    conn.execute("select wf.configure_stage('echo', max_concurrency => 2)")
    first = claim(conn, "echo", 10)
    assert len(first) == 2
    assert claim(conn, "echo", 10) == []  # another worker's claim: no room
    complete(conn, first[0], {})
    assert len(claim(conn, "echo", 10)) == 1


def test_a_lost_attempt_gives_its_room_back(conn):
    queued(conn, 3)
    conn.execute("select wf.configure_stage('echo', max_concurrency => 1)")
    [lost] = claim(conn, "echo", 10)
    assert claim(conn, "echo", 10) == []
    # its worker died: the lease runs out and the message comes back
    conn.execute("update wf.steps set lease_until = now() - interval '1 second' where run_id = %s", (lost["run_id"],))
    make_visible(conn, "echo")
    [again] = claim(conn, "echo", 10)
    assert (again["run_id"], again["attempt"]) == (lost["run_id"], 2)


def test_rate_per_second_allows_a_burst_then_refills(conn):
    queued(conn, 20)
    conn.execute("select wf.configure_stage('echo', rate_per_second => 5, burst => 3)")
    assert len(claim(conn, "echo", 20)) == 3
    assert claim(conn, "echo", 20) == []
    conn.execute("update wf.stages set tokens_at = tokens_at - interval '400 milliseconds' where name = 'echo'")
    assert len(claim(conn, "echo", 20)) == 2  # 0.4 s at 5/s
    conn.execute("update wf.stages set tokens_at = tokens_at - interval '10 seconds' where name = 'echo'")
    assert len(claim(conn, "echo", 20)) == 3  # never more than the burst


def test_a_stage_without_limits_holds_no_leases(conn):
    queued(conn, 5)
    assert len(claim(conn, "echo", 10)) == 5
    assert counts(conn, "wf.stage_leases") == {"wf.stage_leases": 0}


def test_clearing_the_limits_frees_the_stage(conn):
    queued(conn, 5)
    conn.execute("select wf.configure_stage('echo', max_concurrency => 1)")
    assert len(claim(conn, "echo", 10)) == 1
    conn.execute("select wf.configure_stage('echo')")
    assert len(claim(conn, "echo", 10)) == 4


def test_stage_health_shows_the_limits(conn):
    queued(conn, 1)
    conn.execute("select wf.configure_stage('echo', 4, 2.5)")
    row = conn.execute("select max_concurrency, rate_per_second, burst, current_rate from wf.stage_health "
                       "where stage = 'echo'").fetchone()
    assert row == {"max_concurrency": 4, "rate_per_second": 2.5, "burst": 3, "current_rate": 0}


@pytest.mark.parametrize(("args", "message"), [
    ("max_concurrency => 0", "stage echo: max_concurrency must be at least 1, got 0"),
    ("rate_per_second => -1", "stage echo: rate_per_second must be more than 0"),
    ("rate_per_second => 1, burst => 0", "stage echo: burst must be at least 1, got 0"),
    ("burst => 3", "stage echo: burst needs rate_per_second"),
])
def test_bad_limits_are_refused_naming_the_field(conn, args, message):
    queued(conn, 1)
    with pytest.raises(errors.InvalidParameterValue, match=message):
        conn.execute(f"select wf.configure_stage('echo', {args})")


def test_configuring_an_unknown_stage_raises_p0002(conn):
    with pytest.raises(errors.NoDataFound, match="unknown stage nope"):
        conn.execute("select wf.configure_stage('nope', 1)")
