"""wf 0.1.0 (commit f93f56f), as its installer put it in a database: the frozen sql/ of that
release (tests/fixtures/wf-0.1.0/) applied file by file, each recorded in wf.migrations.
Upgrade tests start from here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import psycopg
from pgmq.install import get_embedded_install_sql

RELEASE_0_1_0 = Path(__file__).resolve().parent / "fixtures" / "wf-0.1.0"


def migrations_0_1_0() -> list[Path]:
    return sorted(RELEASE_0_1_0.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def install_0_1_0(dsn: str, upto: int | None = None) -> None:
    """What `wf install --no-cron` of 0.1.0 did on an empty database (`upto`: stop after that
    migration, for installs older than the release)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("set client_min_messages = warning")
        conn.execute(get_embedded_install_sql())
        conn.execute(
            """create schema if not exists wf;
               create table if not exists wf.migrations (
                 version    int primary key,
                 name       text not null,
                 checksum   text not null,
                 applied_at timestamptz not null default now()
               );
               revoke all on wf.migrations from public;""")
        for path in migrations_0_1_0():
            version = int(path.name[:4])
            if upto is not None and version > upto:
                break
            text = path.read_text()
            with conn.transaction():
                conn.execute(text)
                conn.execute("insert into wf.migrations (version, name, checksum) values (%s, %s, %s)",
                             (version, path.name, hashlib.sha256(text.encode()).hexdigest()))
