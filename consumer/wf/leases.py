"""Until when each claimed step's message is ours: set at the claim, moved on by heartbeats (wf.extend),
read by reports, which stop retrying once it has run out."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

TaskKey = tuple[Any, str, int]


def task_key(task: Mapping[str, Any]) -> TaskKey:
    """A claimed step's attempt: run id, step name, attempt number."""
    return task["run_id"], task["step"], task["attempt"]


def seconds_left(until: datetime) -> float:
    return (until - datetime.now(UTC)).total_seconds()


class Leases:
    def __init__(self) -> None:
        self._until: dict[TaskKey, datetime] = {}

    def hold(self, task: Mapping[str, Any]) -> None:
        """A claim: the message is ours until the claim's visible_until."""
        self._until[task_key(task)] = task["visible_until"]

    def extend(self, task: Mapping[str, Any], seconds: int) -> None:
        """wf.extend moved the lease on: ours for `seconds` from now."""
        self._until[task_key(task)] = datetime.now(UTC) + timedelta(seconds=seconds)

    def release(self, task: Mapping[str, Any]) -> None:
        self._until.pop(task_key(task), None)

    def until(self, task: Mapping[str, Any]) -> datetime:
        return self._until.get(task_key(task), task["visible_until"])

    def seconds_left(self, task: Mapping[str, Any]) -> float:
        return seconds_left(self.until(task))
