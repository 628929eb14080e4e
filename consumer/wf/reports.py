"""Group commit for wf.complete: the answers of many calls in one statement.

Idle, an answer goes at once (no added latency). Under load, answers that arrive while a
batch is in flight wait for the next one, so the database runs one statement and one commit
for many steps instead of one each (wf.complete_batch: each answer still checked on its own
attempt, run locks taken in id order like claims, messages archived once per queue).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import asyncpg

_BATCH_SQL = "select wf.complete_batch($1::uuid[], $2::text[], $3::int[], $4::jsonb[])"
_ONE_SQL = "select wf.complete($1, $2, $3, $4)"


@dataclass
class _Answer:
    run_id: Any
    step: str
    attempt: int
    output: Any
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class CompleteBatcher:
    def __init__(self, pool: asyncpg.Pool, lanes: int = 2, max_batch: int = 64) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Answer] = asyncio.Queue()
        self._lanes = [asyncio.create_task(self._lane(), name=f"wf-complete-lane-{i}") for i in range(lanes)]

    async def complete(self, run_id: Any, step: str, attempt: int, output: Any) -> None:
        """wf.complete for one answer; raises what the database raised for it."""
        answer = _Answer(run_id, step, attempt, output)
        await self._queue.put(answer)
        await answer.done

    async def close(self) -> None:
        for lane in self._lanes:
            lane.cancel()
        await asyncio.gather(*self._lanes, return_exceptions=True)

    async def _lane(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._send([a for a in batch if not a.done.cancelled()])

    async def _send(self, batch: list[_Answer]) -> None:
        if len(batch) > 1:
            try:
                await self._pool.fetchval(_BATCH_SQL, [a.run_id for a in batch], [a.step for a in batch],
                                          [a.attempt for a in batch], [a.output for a in batch])
            except Exception:  # one bad answer must not fail the others: send them one by one
                pass
            else:
                for answer in batch:
                    with contextlib.suppress(asyncio.InvalidStateError):
                        answer.done.set_result(None)
                return
        for answer in batch:
            try:
                await self._pool.fetchval(_ONE_SQL, answer.run_id, answer.step, answer.attempt, answer.output)
            except Exception as exc:
                with contextlib.suppress(asyncio.InvalidStateError):
                    answer.done.set_exception(exc)
            else:
                with contextlib.suppress(asyncio.InvalidStateError):
                    answer.done.set_result(None)
