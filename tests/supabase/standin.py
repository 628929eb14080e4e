"""A minimal stand-in for Supabase in a test database (see conftest.py), and a signed-in request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg
from psycopg import errors

# auth.uid() as Supabase Auth defines it: the `sub` of the claims PostgREST puts in
# request.jwt.claims (request.jwt.claim.sub is what older PostgREST versions set)
AUTH_STAND_IN = """
create schema if not exists auth;
grant usage on schema auth to anon, authenticated;
create or replace function auth.uid()
returns uuid
language sql
stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
"""


def create_supabase_roles(dsn: str) -> None:
    """Roles are cluster-wide: create them once, tolerating another test having done it."""
    with psycopg.connect(dsn, autocommit=True) as c:
        for role in ("anon", "authenticated"):
            if c.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
                continue
            with suppress(errors.DuplicateObject):
                c.execute(f"create role {role} nologin noinherit")


def add_auth_stand_in(dsn: str) -> None:
    create_supabase_roles(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(AUTH_STAND_IN)



@contextmanager
def signed_in(conn: psycopg.Connection, user: str | None, role: str | None = "authenticated") -> Iterator[None]:
    """A transaction as PostgREST runs a request: the JWT claims in request.jwt.claims and,
    unless role is None, `set local role`. user None: no claims (a request without a JWT)."""
    with conn.transaction():
        if user is not None:
            claims = {"sub": user, "role": role or "authenticated", "aud": "authenticated"}
            conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        if role is not None:
            conn.execute(f"set local role {role}")
        yield
