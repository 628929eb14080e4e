"""POST one step to its edge function and classify the answer (README, Edge function contract).

aiohttp with one shared connection pool: measured here, one shared httpx.AsyncClient
collapses under concurrency (its pool scans every pooled connection per request),
while aiohttp's connector keeps ~9k calls/s on this machine (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from standardwebhooks.webhooks import Webhook

from wf import tracing

EXCERPT_CHARS = 500
RETRYABLE_STATUS = {408, 429}
# wf.fail waits at most a day whatever the function asks, and takes an int4: a bigger value would fail
# the report itself on the client side
MAX_RETRY_AFTER = 86400


@dataclass(frozen=True)
class Outcome:
    """How a call ended; `ok` → wf.complete(output), otherwise wf.fail(...)."""

    ok: bool
    output: Any = None
    error: str | None = None
    retryable: bool = False
    http_status: int | None = None
    retry_after: int | None = None
    duration_ms: float = 0.0


@dataclass(frozen=True)
class Call:
    run_id: str
    step: str
    attempt: int
    function: str
    action: str
    payload: Any
    timeout_seconds: float
    correlation_id: str | None = None
    # W3C trace context for the function (wf.tracing): the attempt's span, else derived from the run id
    traceparent: str | None = None


def _excerpt(body: bytes) -> str:
    text = body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def parse_retry_after(value: str | None) -> int | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(int(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0, int((when - datetime.now(UTC)).total_seconds() + 0.999)), MAX_RETRY_AFTER)


_ENVELOPE_KEYS = {"success", "error", "retryable"}


def _failure_text(status: int | None, parsed: Any, body: bytes, fallback: str | None = None) -> str:
    """The error text, plus a bounded excerpt of the body when it says more than the error
    (README, Edge function contract)."""
    prefix = f"HTTP {status}: " if status is not None else ""
    contract_error = parsed.get("error") if isinstance(parsed, dict) else None
    if not contract_error:
        return prefix + (fallback or _excerpt(body))
    if isinstance(parsed, dict) and set(parsed) <= _ENVELOPE_KEYS:
        return f"{prefix}{contract_error}"
    return f"{prefix}{contract_error} | body: {_excerpt(body)}"


def classify(status: int, body: bytes, retry_after: str | None) -> Outcome:
    """README, Edge function contract: 2xx + success → output; 5xx, 408, 429, retryable → retry; the rest
    → final."""
    parsed: Any = None
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    if status >= 500 or status in RETRYABLE_STATUS:
        return Outcome(False, error=_failure_text(status, parsed, body), retryable=True, http_status=status,
                       retry_after=parse_retry_after(retry_after))
    if not 200 <= status < 300:
        return Outcome(False, error=_failure_text(status, parsed, body), retryable=False, http_status=status)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("success"), bool):
        return Outcome(False, error=f"response breaks the contract (want {{\"success\": bool, ...}}): {_excerpt(body)}",
                       retryable=False, http_status=status)
    if parsed["success"]:
        return Outcome(True, output=parsed.get("data"), http_status=status)
    return Outcome(False, error=_failure_text(None, parsed, body, "function answered success: false"),
                   retryable=parsed.get("retryable") is True, http_status=status)


class Caller:
    """Makes the calls: one aiohttp session, the bearer token, optional Standard Webhooks signature."""

    def __init__(self, base_url: str, token: str | None, signing_secret: str | None,
                 max_connections: int, max_response_bytes: int = 1_048_576) -> None:
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._signer = Webhook(signing_secret) if signing_secret else None
        self._max_response_bytes = max_response_bytes
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def set_secrets(self, token: str | None, signing_secret: str | None) -> None:
        """Rotate the token and signing secret (SIGHUP, wf.secrets): calls started from now on use the new
        ones; a call in flight keeps the headers it was sent with."""
        signer = Webhook(signing_secret) if signing_secret else None
        self._token, self._signer = token, signer

    async def __aenter__(self) -> Caller:
        connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=30, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, json_serialize=lambda v: orjson.dumps(v).decode())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def headers(self, call: Call, body: bytes) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "x-wf-run": call.run_id,
            "x-wf-step": call.step,
            "x-wf-attempt": str(call.attempt),
            "traceparent": call.traceparent or tracing.Attempt(call.run_id).traceparent,
        }
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        if call.correlation_id:
            headers["x-correlation-id"] = call.correlation_id
        if self._signer is not None:
            # the same id on every attempt, so a function can drop a duplicate delivery
            webhook_id = f"{call.run_id}:{call.step}"
            now = datetime.now(UTC)
            headers["webhook-id"] = webhook_id
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            headers["webhook-signature"] = self._signer.sign(webhook_id, now, body.decode())
        return headers

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, or its first cap + 1 bytes when it is larger than the cap."""
        cap = self._max_response_bytes
        if response.content_length is not None and response.content_length <= cap:
            return await response.read()
        content = bytearray()
        async for chunk in response.content.iter_chunked(65536):
            content += chunk
            if len(content) > cap:
                break
        return bytes(content)

    async def call(self, call: Call) -> Outcome:
        assert self._session is not None, "use Caller as an async context manager"
        body = orjson.dumps({"action": call.action, "payload": call.payload})
        started = time.perf_counter()
        try:
            async with self._session.post(
                f"{self._base_url}/{call.function}",
                data=body,
                headers=self.headers(call, body),
                timeout=aiohttp.ClientTimeout(total=call.timeout_seconds),
                # calls go only to WF_FUNCTIONS_URL (README, Definition reference: `function`): a 3xx is an
                # answer, not a new destination
                allow_redirects=False,
            ) as response:
                # read the whole body before trusting the status: a dropped connection shows up here
                content = await self._read_capped(response)
                if len(content) > self._max_response_bytes:
                    outcome = Outcome(False, error=f"response body is over {self._max_response_bytes} bytes "
                                      f"(the cap on what wf stores); starts with: {_excerpt(content)}",
                                      retryable=False, http_status=response.status)
                else:
                    outcome = classify(response.status, content, response.headers.get("retry-after"))
        except TimeoutError:
            outcome = Outcome(False, error=f"timeout after {call.timeout_seconds:g}s", retryable=True)
        except aiohttp.ClientError as exc:
            outcome = Outcome(False, error=f"connection error: {type(exc).__name__}: {exc}", retryable=True)
        except asyncio.CancelledError:
            raise
        except OSError as exc:
            outcome = Outcome(False, error=f"connection error: {exc}", retryable=True)
        duration_ms = (time.perf_counter() - started) * 1000
        return Outcome(outcome.ok, outcome.output, outcome.error, outcome.retryable, outcome.http_status,
                       outcome.retry_after, duration_ms)
