"""One JSON object per line on stdout: easy to grep, easy to ship. Never secrets."""

from __future__ import annotations

import sys
import time
from typing import Any

import orjson


def log(event: str, level: str = "info", **fields: Any) -> None:
    record = {"ts": round(time.time(), 3), "level": level, "event": event, **fields}
    sys.stdout.buffer.write(orjson.dumps(record, default=str) + b"\n")
    sys.stdout.flush()
