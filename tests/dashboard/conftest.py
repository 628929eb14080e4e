"""Dashboard fixtures: the aiohttp app in this process (aiohttp's test server) against a test database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from wf.dashboard.server import create_app

TOKEN = "test-token-0123456789abcdef"



@pytest.fixture
async def dashboard(db: str) -> AsyncIterator[Callable[..., Awaitable[TestClient]]]:
    """Start the dashboard on `db` (or another DSN), read-only unless `token` is given."""
    clients: list[TestClient] = []

    async def start(token: str | None = TOKEN, dsn: str | None = None) -> TestClient:
        client = TestClient(TestServer(create_app(dsn or db, token)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
