"""Claim-ahead: the worker holds a few steps beyond its free slots, and a finishing step hands its
slot to one of them at once, so the calls in flight stay at the limit while work is queued.
The loop is driven directly with stand-ins for the pool and the step runner (no sleeps)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from wf.wakeups import Stage
from wf.worker import Worker, WorkerConfig


def row(step: str, lease_seconds: float = 60) -> dict[str, Any]:
    return {"run_id": uuid.uuid4(), "step": step, "attempt": 1, "timeout_seconds": 30,
            "visible_until": datetime.now(UTC) + timedelta(seconds=lease_seconds)}


class Pool:
    """wf.claim hands out the queued rows; wf.extend answers `extend_ok`."""

    def __init__(self, rows: list[dict[str, Any]], extend_ok: bool = True) -> None:
        self.rows, self.extend_ok = rows, extend_ok
        self.asked: list[int] = []
        self.extended: list[str] = []

    async def fetch(self, _query: str, _stage: str, qty: int) -> list[dict[str, Any]]:
        self.asked.append(qty)
        taken, self.rows = self.rows[:qty], self.rows[qty:]
        return taken

    async def fetchval(self, _query: str, _run_id: object, step: str, *_args: object) -> bool:
        self.extended.append(step)
        return self.extend_ok


class Steps:
    """Each call runs until the test lets it finish."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, asyncio.Event] = {}

    async def run(self, _stage: str, task: dict[str, Any]) -> None:
        self.started.append(task["step"])
        self.release[task["step"]] = asyncio.Event()
        await self.release[task["step"]].wait()


_WORKERS: list[Worker] = []


@pytest.fixture(autouse=True)
async def cancel_left_over_steps() -> AsyncIterator[None]:
    """Steps a test left waiting are cancelled before its event loop closes."""
    yield
    while _WORKERS:
        w = _WORKERS.pop()
        for task in list(w._tasks):
            task.cancel()
        await asyncio.gather(*w._tasks, return_exceptions=True)


def worker(pool: Pool, concurrency: int = 2, claim_ahead: int | None = 2,
           max_concurrency: int | None = None) -> tuple[Worker, Stage, Steps]:
    w = Worker(WorkerConfig(dsn="postgresql://unused", functions_url="http://unused", concurrency=concurrency,
                            claim_ahead=claim_ahead))
    stage = w._wakeups.stages["echo"] = Stage("echo", "wf_echo", max_concurrency)
    steps = Steps()
    w._steps, w._pool = steps, pool  # type: ignore[assignment]
    _WORKERS.append(w)
    return w, stage, steps


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_claim_takes_the_free_slots_and_the_claim_ahead_room():
    pool = Pool([row(f"s{i}") for i in range(10)])
    w, stage, steps = worker(pool)
    assert await w._claim(stage) == 4
    await settle()
    assert (pool.asked, steps.started, w._busy, len(w._ahead)) == ([4], ["s0", "s1"], 2, 2)
    assert w._free(stage) == 0


async def test_a_finishing_step_hands_its_slot_to_a_claimed_ahead_step_without_a_claim():
    pool = Pool([row(f"s{i}") for i in range(10)])
    w, stage, steps = worker(pool)
    await w._claim(stage)
    await settle()
    w._wakeups.wake.clear()
    steps.release["s0"].set()
    await w._wakeups.wake.wait()  # the dispatcher wakes: the slot is already taken again
    assert (w._busy, len(w._ahead), pool.asked) == (2, 1, [4])
    await settle()
    assert steps.started == ["s0", "s1", "s2"]
    assert w._free(stage) == 1  # room to claim one ahead again


async def test_claim_ahead_never_passes_the_stages_own_limit():
    pool = Pool([row(f"s{i}") for i in range(10)])
    w, stage, _ = worker(pool, concurrency=2, claim_ahead=2, max_concurrency=3)
    await w._claim(stage)
    await settle()
    assert (pool.asked, w._busy, stage.in_flight + stage.ahead) == ([3], 2, 3)
    assert w._free(stage) == 0


async def test_claim_ahead_zero_claims_only_free_slots():
    pool = Pool([row(f"s{i}") for i in range(10)])
    w, stage, _ = worker(pool, claim_ahead=0)
    await w._claim(stage)
    assert (pool.asked, len(w._ahead)) == ([2], 0)


async def test_a_step_that_waited_near_the_end_of_its_lease_is_extended_before_its_call():
    pool = Pool([row("s0"), row("s1"), row("s2", lease_seconds=3)])
    w, stage, steps = worker(pool, claim_ahead=1)
    await w._claim(stage)
    await settle()
    steps.release["s0"].set()
    await settle()
    assert (pool.extended, steps.started) == (["s2"], ["s0", "s1", "s2"])


async def test_a_step_whose_lease_ran_out_while_it_waited_is_not_called():
    pool = Pool([row("s0"), row("s1"), row("s2", lease_seconds=-1)], extend_ok=False)
    w, stage, steps = worker(pool, claim_ahead=1)
    await w._claim(stage)
    await settle()
    steps.release["s0"].set()
    await settle()
    assert (pool.extended, steps.started, w._busy) == (["s2"], ["s0", "s1"], 1)


async def test_on_stop_claimed_ahead_steps_take_the_freed_slots_within_the_grace_period():
    pool = Pool([row(f"s{i}") for i in range(4)])
    w, stage, steps = worker(pool)
    await w._claim(stage)
    await settle()
    w.stop()
    drained = asyncio.create_task(w._drain())
    for name in ("s0", "s1"):
        steps.release[name].set()
    await settle()
    for name in ("s2", "s3"):
        steps.release[name].set()
    await asyncio.wait_for(drained, 5)
    assert (steps.started, w._busy, len(w._ahead)) == (["s0", "s1", "s2", "s3"], 0, 0)


def test_free_slots_count_as_idle_and_as_stall_only_while_work_was_waiting(monkeypatch):
    from wf import metrics as metrics_module
    from wf.metrics import Metrics, SlotClock

    now = [100.0]
    monkeypatch.setattr(metrics_module.time, "monotonic", lambda: now[0])
    m = Metrics()
    clock = SlotClock(m, slots=4)
    clock.update(busy=2, ready=True)  # from here: 2 slots free while work waits
    now[0] += 1.5
    clock.update(busy=4, ready=True)  # all slots busy: nothing free
    now[0] += 2.0
    clock.update(busy=1, ready=False)  # 3 free, nothing waiting
    now[0] += 1.0
    clock.update(busy=1, ready=False)
    assert (m.stall._value.get(), m.idle_slots._value.get()) == (3.0, 6.0)


async def test_a_claim_that_gets_all_it_asked_for_marks_a_backlog_and_a_short_one_does_not():
    full, _, _ = worker(Pool([row(f"s{i}") for i in range(10)]))
    await full._claim(full._wakeups.stages["echo"])
    short, _, _ = worker(Pool([row("only")]))
    await short._claim(short._wakeups.stages["echo"])
    assert (full._backlog, short._backlog) == ({"echo"}, set())
