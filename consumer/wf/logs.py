"""One JSON object per line on stdout: easy to grep, easy to ship. Never secrets."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson


def log(event: str, level: str = "info", **fields: Any) -> None:
    record = {"ts": round(time.time(), 3), "level": level, "event": event, **fields}
    sys.stdout.buffer.write(orjson.dumps(record, default=str) + b"\n")
    sys.stdout.flush()


class JsonLogHandler(logging.Handler):
    """Routes library logging (asyncpg, aiohttp …) into the same one-line JSON stream."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {"logger": record.name, "message": record.getMessage()}
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            fields["error"] = f"{type(exc).__name__}: {exc}"
        log("library", level=record.levelname.lower(), **fields)


def route_library_logs(level: int = logging.WARNING) -> None:
    logging.basicConfig(level=level, handlers=[JsonLogHandler()], force=True)
