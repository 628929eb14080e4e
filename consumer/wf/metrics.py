"""Prometheus metrics and the /metrics + /healthz endpoints of the worker."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("wf_calls", "Edge function calls by stage and outcome",
                             ["stage", "outcome"], registry=self.registry)
        self.duration = Histogram("wf_call_duration_seconds", "Edge function call duration", ["stage"],
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 150),
                                  registry=self.registry)
        self.in_flight = Gauge("wf_in_flight", "Calls in flight by stage", ["stage"], registry=self.registry)
        self.queue_depth = Gauge("wf_queue_depth", "Messages in the stage's queue", ["stage"],
                                 registry=self.registry)
        self.idle_slots = Counter("wf_worker_idle_slot_seconds", "Slot-seconds with no call in the slot",
                                  registry=self.registry)
        self.stall = Counter("wf_worker_stall_seconds",
                             "Slot-seconds with no call in the slot while a stage's last claim got all it asked for",
                             registry=self.registry)
        self.claimed_ahead = Gauge("wf_worker_claimed_ahead", "Steps claimed and waiting for a free slot",
                                   registry=self.registry)


class SlotClock:
    """Integrates free slots over time: all of it is idle, and it is a stall while work was waiting
    (a stage whose last claim got all it asked for). Updated whenever the slots or that change."""

    def __init__(self, metrics: Metrics, slots: int) -> None:
        self._metrics = metrics
        self._slots = slots
        self._at = time.monotonic()
        self._free = slots
        self._ready = False

    def update(self, busy: int, ready: bool) -> None:
        now = time.monotonic()
        free_seconds = self._free * (now - self._at)
        if free_seconds > 0:
            self._metrics.idle_slots.inc(free_seconds)
            if self._ready:
                self._metrics.stall.inc(free_seconds)
        self._at, self._free, self._ready = now, max(0, self._slots - busy), ready


class LastContact:
    """When the database last answered (time.monotonic()); /healthz is healthy while that is recent."""

    def __init__(self) -> None:
        self.at = time.monotonic()

    def touch(self) -> None:
        self.at = time.monotonic()


class HealthServer:
    """Serves /metrics and /healthz; healthy while the database answered recently."""

    def __init__(self, metrics: Metrics, last_db_contact: Callable[[], float], max_silence: float = 30.0) -> None:
        self._metrics = metrics
        self._last_db_contact = last_db_contact
        self._max_silence = max_silence
        self._runner: web.AppRunner | None = None

    async def _metrics_handler(self, _: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"content-type": CONTENT_TYPE_LATEST})

    async def _health_handler(self, _: web.Request) -> web.Response:
        silence = time.monotonic() - self._last_db_contact()
        healthy = silence <= self._max_silence
        return web.json_response({"status": "ok" if healthy else "database unreachable",
                                  "seconds_since_db_contact": round(silence, 1)},
                                 status=200 if healthy else 503)

    async def start(self, port: int, host: str = "0.0.0.0") -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_handler)
        app.router.add_get("/healthz", self._health_handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
