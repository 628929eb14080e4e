"""Rows into what the run page draws: the step graph (nodes and edges, laid out in the browser by dagre)
and the timeline of attempts (bars as fractions of the run's span, drawn as SVG by the template)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

FINAL_STEP_STATES = ("succeeded", "failed", "dead", "skipped", "cancelled")


def graph(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Nodes for the run's steps (a map step summarises its items, a compensation hangs off its step) and
    edges for depends_on. Each node says where a click leads: a child run, or the step's row below."""
    items: dict[str, list[dict[str, Any]]] = {}
    for s in steps:
        if s["map_step"] is not None:
            items.setdefault(s["map_step"], []).append(s)
    nodes, edges = [], []
    names = {s["name"] for s in steps if s["map_step"] is None}
    for s in steps:
        if s["map_step"] is not None:
            continue
        detail = s["kind"] if s["kind"] != "function" else f"{s['function']}.{s['action']}"
        link = f"#step-{s['name']}"
        if s["kind"] == "workflow" and s["child_run_id"] is not None:
            link = f"/runs/{s['child_run_id']}"
        if s["name"] in items:
            its = items[s["name"]]
            done = sum(1 for i in its if i["status"] in FINAL_STEP_STATES)
            detail = f"{detail} · {done}/{len(its)} items"
        nodes.append({"id": s["name"], "label": s["name"], "detail": detail, "status": s["status"],
                      "attempt": s["attempt"], "link": link})
        for dep in s["depends_on"] or []:
            if dep in names:
                edges.append({"from": dep, "to": s["name"], "kind": "depends"})
        if s["compensates"] is not None and s["compensates"] in names:
            edges.append({"from": s["compensates"], "to": s["name"], "kind": "compensates"})
    return {"nodes": nodes, "edges": edges}


@dataclass
class Bar:
    label: str
    step: str
    attempt: int
    status: str
    wait_x: float  # queued → started, as % of the span
    wait_w: float
    run_x: float  # started → finished (or now)
    run_w: float
    title: str


def timeline(attempts: list[dict[str, Any]], now: datetime) -> tuple[list[Bar], datetime | None, float]:
    """One bar per attempt, positioned in % of the span from the first queued/started to the last finished
    (or now); returns the bars, the span's start and its length in seconds."""
    if not attempts:
        return [], None, 0.0
    starts = [a["queued_at"] or a["started_at"] for a in attempts]
    begin = min(starts)
    end = max([a["finished_at"] or now for a in attempts] + [begin])
    span = max((end - begin).total_seconds(), 0.001)

    def pct(at: datetime) -> float:
        return round(max(0.0, min(100.0, (at - begin).total_seconds() / span * 100)), 3)

    bars = []
    for a in attempts:
        queued = a["queued_at"] or a["started_at"]
        started, finished = a["started_at"], a["finished_at"] or now
        run_w = max(pct(finished) - pct(started), 0.15)  # an instant still shows
        took = (finished - started).total_seconds()
        waited = max((started - queued).total_seconds(), 0.0)
        status = a["status"]
        title = f"{a['step']} attempt {a['attempt']}: {status}, ran {_seconds(took)}, waited {_seconds(waited)}"
        if a.get("http_status"):
            title += f", HTTP {a['http_status']}"
        bars.append(Bar(label=f"{a['step']} #{a['attempt']}", step=a["step"], attempt=a["attempt"], status=status,
                        wait_x=pct(queued), wait_w=max(pct(started) - pct(queued), 0.0), run_x=pct(started),
                        run_w=run_w, title=title))
    return bars, begin, span


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def duration(value: Any) -> str:
    """A timedelta (or seconds) as a person reads it."""
    if value is None:
        return ""
    seconds = value.total_seconds() if hasattr(value, "total_seconds") else float(value)
    if seconds >= 7200:
        return f"{seconds / 3600:.1f} h"
    return _seconds(seconds)
