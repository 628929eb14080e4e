"""Fixtures for Supabase integration: a database with a minimal stand-in for Supabase (roles
`anon` and `authenticated`, schema `auth` with auth.uid() reading the JWT claims as Supabase's
does) and wf installed after it, as on Supabase, where Auth is there before any migration."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row
from standin import add_auth_stand_in
from wf.install import install_sync

SUPABASE_TEMPLATE_DB = "wf_supabase_template"


@pytest.fixture(scope="session")
def supabase_template(pg_server) -> Iterator[str]:
    janitor = pg_server.janitor(SUPABASE_TEMPLATE_DB, as_template=True)
    janitor.drop()
    janitor.init()
    dsn = pg_server.dsn(SUPABASE_TEMPLATE_DB)
    add_auth_stand_in(dsn)
    install_sync(dsn, cron=False)
    yield SUPABASE_TEMPLATE_DB
    janitor.drop()


@pytest.fixture
def supa_db(pg_server, supabase_template) -> Iterator[str]:
    """DSN of a fresh database with the Supabase stand-in and wf installed after it."""
    name = f"wf_s_{uuid.uuid4().hex[:12]}"
    janitor = pg_server.janitor(name, template_dbname=supabase_template)
    janitor.init()
    try:
        yield pg_server.dsn(name)
    finally:
        janitor.drop()


@pytest.fixture
def supa(supa_db) -> Iterator[psycopg.Connection]:
    with psycopg.connect(supa_db, autocommit=True, row_factory=dict_row) as c:
        yield c
