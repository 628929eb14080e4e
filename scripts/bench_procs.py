"""What scripts/bench_consumer.py reads from the processes it measures: CPU time of process trees
(psutil), the worker's Prometheus counters, a free TCP port."""

from __future__ import annotations

import asyncio
import bisect
import math
import socket
import time
from dataclasses import dataclass, field

import aiohttp
import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_cpu(pid: int) -> float:
    """User + system seconds of a process and all its descendants, those still running and those
    it has reaped (a PostgreSQL backend that exits is added to the postmaster's children times)."""
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        children = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    for child in children:
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:  # exited since: its time moves to its parent once reaped
            continue
        total += times.user + times.system
    return total


@dataclass
class CpuSampler:
    """Samples the CPU seconds of named process trees every `interval` seconds in the background,
    so the CPU spent between two wall-clock instants known only afterwards (a window read from the
    database's timestamps) can be interpolated."""

    pids: dict[str, int]
    interval: float = 0.05
    times: list[float] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.samples.append({name: tree_cpu(pid) for name, pid in self.pids.items()})
        self.times.append(time.time())

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self.sample()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stops sampling after a last sample; a second call does nothing."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        self.sample()

    def at(self, when: float) -> dict[str, float]:
        """CPU seconds of each tree at `when` (epoch seconds), linear between the samples around it."""
        i = bisect.bisect_left(self.times, when)
        if i == 0:
            return self.samples[0]
        if i == len(self.times):
            return self.samples[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        share = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
        before, after = self.samples[i - 1], self.samples[i]
        return {name: before[name] + share * (after[name] - before[name]) for name in before}

    def between(self, start: float, end: float) -> dict[str, float]:
        first, last = self.at(start), self.at(end)
        return {name: last[name] - first[name] for name in first}


async def scrape_counters(port: int, *names: str) -> dict[str, float]:
    """Each counter summed over its labels, NaN when the worker does not export it."""
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    found = dict.fromkeys(names, math.nan)
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        metric, _, value = line.rpartition(" ")
        name = metric.split("{", 1)[0]
        if name in found:
            found[name] = (0.0 if math.isnan(found[name]) else found[name]) + float(value)
    return found
