"""scripts/soak.py: a small soak drives runs through the SQL API and its wf.tick() side task
deletes what is past retention — a second soak after the first one's runs aged out leaves no run,
step, event, archived message or dead letter of the first — and the verdict reads flat sizes and
steps/s off the segments."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from soak import JUDGED, KEPT_A_DAY, Segment, judge, soak

RETENTION_DAYS = 0.0001  # 8.64 s: the smallest retention wf.settings takes
FIRST, SECOND = 200, 400


def counts(dsn: str, before: object) -> dict[str, int]:
    """What is left from before `before` (the first soak) in every table retention trims."""
    with psycopg.connect(dsn) as conn:
        archives = [r[0] for r in conn.execute(
            "select relname from pg_class where relnamespace = 'pgmq'::regnamespace and relkind = 'r' "
            "and relname like 'a\\_wf\\_%'")]
        out = {
            "runs": conn.execute("select count(*) from wf.runs where created_at < %s", (before,)).fetchone()[0],
            "steps": conn.execute("select count(*) from wf.steps s where not exists "
                                  "(select 1 from wf.runs r where r.id = s.run_id)").fetchone()[0]
            + conn.execute("select count(*) from wf.steps where queued_at < %s", (before,)).fetchone()[0],
            "events": conn.execute("select count(*) from wf.events where at < %s", (before,)).fetchone()[0],
            "dead letters": conn.execute("select count(*) from pgmq.q_wf_dlq where enqueued_at < %s",
                                         (before,)).fetchone()[0],
            "archived": sum(conn.execute(f'select count(*) from pgmq."{a}" where archived_at < %s',
                                         (before,)).fetchone()[0] for a in archives),
        }
    return out


async def test_a_second_soak_deletes_the_first_soaks_runs_and_archived_messages(db: str) -> None:
    lines: list[str] = []
    options = {"retention_days": RETENTION_DAYS, "segments": 2, "tick_seconds": 1.0, "workers": 2,
               "batch": 16, "backlog": 200, "fail_every": 10, "out": lines.append}
    first = await soak(db, FIRST, **options)  # type: ignore[arg-type]
    assert len(first.segments) == 2 and first.segments[-1].runs_done == FIRST
    assert first.segments[-1].sizes["runs"] > 0 and first.segments[-1].rows["archived"] >= 2 * FIRST
    with psycopg.connect(db) as conn:
        before = conn.execute("select clock_timestamp()").fetchone()[0]
        assert conn.execute("select value #>> '{}' from wf.settings where key = 'retention_days'").fetchone()[0] \
            == "0.0001"
    left = counts(db, before)
    assert left["runs"] == FIRST and left["archived"] >= 2 * FIRST and left["dead letters"] > 0, left
    assert left["events"] > 0 and left["steps"] > 0

    await asyncio.sleep(RETENTION_DAYS * 86400 + 0.5)  # the first soak's runs are past retention now
    second = await soak(db, SECOND, **options)  # type: ignore[arg-type]
    assert second.deleted["deleted_runs"] >= FIRST, second.deleted
    assert second.deleted["deleted_archived"] >= left["archived"], second.deleted
    assert second.deleted["deleted_dead_letters"] >= left["dead letters"], second.deleted
    assert counts(db, before) == {"runs": 0, "steps": 0, "events": 0, "dead letters": 0, "archived": 0}
    assert any("deleted runs=" in line and "deleted runs=0 " not in line for line in lines)


def segment(i: int, elapsed: float, rate: float, size: int) -> Segment:
    return Segment(i, elapsed, (i + 1) * 100, int(rate * 10), 10.0, dict.fromkeys((*JUDGED, *KEPT_A_DAY), size),
                   {"runs": 0, "events": 0, "archived": 0}, {}, 10)


def test_the_verdict_judges_the_steady_state_after_the_retention_windows() -> None:
    mb = 1 << 20
    flat = [segment(i, 10.0 * (i + 1), 1000 - i, mb * min(i + 1, 6)) for i in range(15)]
    v = judge(flat, window_seconds=30, tolerance=0.25)
    assert v.baseline == 5 and v.sizes_flat and v.max_growth == 1.0  # the second window ends at 60 s
    assert v.speed_from == 3  # the first window ends at 30 s (segment index 2)
    assert v.steps_within and 0.98 < v.steps_ratio < 1.0

    growing = [segment(i, 10.0 * (i + 1), 1000 - 30 * i, mb * (i + 1)) for i in range(15)]
    v = judge(growing, window_seconds=30, tolerance=0.25)
    assert v.sizes_flat is False and v.max_growth == 15 / 6
    assert not v.steps_within

    assert judge(flat[:3], window_seconds=30, tolerance=0.25).sizes_flat is None  # ended inside the windows


def test_the_speed_is_judged_after_retention_began_and_the_first_segments_are_shown() -> None:
    # fast while nothing is deleted, then a steady 800 steps/s
    rates = [1200, 1200, 1200, *[800] * 12]
    segs = [segment(i, 10.0 * (i + 1), rate, 1 << 20) for i, rate in enumerate(rates)]
    v = judge(segs, window_seconds=30, tolerance=0.25)
    assert v.steps_within and v.steps_ratio == 1.0  # 800 against 800
    assert v.steps_before == (1200 + 1200 + 800) / 3  # segments 2-4, shown beside it
