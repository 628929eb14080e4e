"""SQL-suite fixtures on top of tests/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row


@pytest.fixture(scope="module")
def shared_conn(pg_server, template_db) -> Iterator[psycopg.Connection]:
    """One clone of the template for a whole module: only for tests that change nothing
    (rejected input), which saves a clone per parametrised case."""
    name = f"wf_m_{uuid.uuid4().hex[:12]}"
    janitor = pg_server.janitor(name, template_dbname=template_db)
    janitor.init()
    try:
        with psycopg.connect(pg_server.dsn(name), autocommit=True, row_factory=dict_row) as c:
            yield c
    finally:
        janitor.drop()
