"""Fixtures: one throwaway PostgreSQL 15 per session, a template database that
already holds the wf schema, and a fresh clone of it for every test."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from pytest_postgresql.janitor import DatabaseJanitor
from wf.install import install_sync
from wfproc import Gateway, WorkerProcess

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_DB = "wf_template"
CRON_DB = "wf_cron"  # scripts/pg-start preloads pg_cron for this database


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    user: str

    def dsn(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def janitor(self, dbname: str, **kwargs: object) -> DatabaseJanitor:
        return DatabaseJanitor(user=self.user, host=self.host, port=self.port, dbname=dbname, **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    """The server scripts/test started (WF_TEST_DSN), or one of our own."""
    dsn = os.environ.get("WF_TEST_DSN")
    if dsn:
        info = conninfo_to_dict(dsn)
        yield Server(str(info.get("host", "127.0.0.1")), int(info.get("port", 5432)), str(info.get("user", "postgres")))
        return
    datadir = tempfile.mkdtemp(prefix="wf-pytest-pg.")
    port = _free_port()
    env = {**os.environ, "WF_PG_FAST": "1"}
    subprocess.run([REPO / "scripts/pg-start", datadir, str(port), CRON_DB], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    try:
        yield Server("127.0.0.1", port, "postgres")
    finally:
        subprocess.run([REPO / "scripts/pg-stop", datadir], check=False)


@pytest.fixture(scope="session")
def template_db(pg_server: Server) -> Iterator[str]:
    janitor = pg_server.janitor(TEMPLATE_DB, as_template=True)
    janitor.drop()
    janitor.init()
    install_sync(pg_server.dsn(TEMPLATE_DB), cron=False)
    yield TEMPLATE_DB
    janitor.drop()


@pytest.fixture
def db(pg_server: Server, template_db: str) -> Iterator[str]:
    """DSN of a fresh database cloned from the template: wf installed, nothing defined."""
    name = f"wf_t_{uuid.uuid4().hex[:12]}"
    janitor = pg_server.janitor(name, template_dbname=template_db)
    janitor.init()
    try:
        yield pg_server.dsn(name)
    finally:
        janitor.drop()


def _empty_database(pg_server: Server) -> Iterator[str]:
    name = f"wf_e_{uuid.uuid4().hex[:12]}"
    janitor = pg_server.janitor(name)
    janitor.init()
    try:
        yield pg_server.dsn(name)
    finally:
        janitor.drop()


@pytest.fixture
def empty_db(pg_server: Server) -> Iterator[str]:
    """DSN of a fresh empty database (for installer tests)."""
    yield from _empty_database(pg_server)


@pytest.fixture
def other_empty_db(pg_server: Server) -> Iterator[str]:
    """A second fresh empty database, for tests that compare two installs."""
    yield from _empty_database(pg_server)


@pytest.fixture(scope="session")
def cron_db(pg_server: Server) -> str:
    """DSN of the database pg_cron serves, with wf installed (shared: clean up what you schedule)."""
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as admin:
        if not admin.execute("select 1 from pg_database where datname = %s", (CRON_DB,)).fetchone():
            admin.execute(f'create database "{CRON_DB}"')
    install_sync(pg_server.dsn(CRON_DB))
    return pg_server.dsn(CRON_DB)


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db, autocommit=True, row_factory=dict_row) as c:
        yield c


@pytest.fixture
def login_as(db: str, conn) -> Iterator[Callable[[str], str]]:
    """A DSN for a fresh login role that is a member of one of wf's roles (wf_reader, wf_worker, wf_admin)."""
    created: list[str] = []

    def login(group: str) -> str:
        name = f"wf_test_{group}_{uuid.uuid4().hex[:8]}"
        conn.execute(f'create role "{name}" login in role {group}')
        created.append(name)
        return db.replace("://postgres@", f"://{name}@", 1)

    yield login
    for name in created:
        conn.execute(f'drop role "{name}"')


# ---- real processes: the Deno functions gateway and `wf worker` (e2e, faults, CLI) ----------


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    """scripts/serve-functions on a free port, with the test token and signing secret."""
    gw = Gateway().start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def start_worker(gateway: Gateway) -> Iterator[Callable[..., WorkerProcess]]:
    """Starts `wf worker` processes (default: --poll-interval 0.2) against a DSN; stops them after the test."""
    workers: list[WorkerProcess] = []

    def start(dsn: str, *args: str, **kwargs: Any) -> WorkerProcess:
        kwargs.setdefault("functions_url", gateway.url)
        worker = WorkerProcess(dsn, args=args or ("--poll-interval", "0.2"), **kwargs)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.cleanup()
