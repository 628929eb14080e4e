"""The HTTP API for apps (supabase/functions/workflows) against the real Deno function behind
the real gateway and a real PostgreSQL with the Supabase stand-in: JWT auth, runs owned by the
caller, each user sees only their own runs, bad input answered 4xx, CORS from an allowlist."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from wfproc import Gateway
from wfsql import chain, claim, define

JWT_SECRET = "wf-test-jwt-secret-with-at-least-32-characters"
ALLOWED_ORIGIN = "https://app.example.com"
OTHER_ORIGIN = "https://evil.example.net"


# ---- tokens (HS256 by hand: header.payload.signature, base64url without padding) -----------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub: str | None, *, secret: str = JWT_SECRET, expires_in: int = 3600, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iat": now - 10, "exp": now + expires_in, "role": "authenticated", "aud": "authenticated", **claims}
    if sub is not None:
        payload["sub"] = sub
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


# ---- fixtures: one database and one gateway for the module ---------------------------------------


@pytest.fixture(scope="module")
def api_db(pg_server, supabase_template) -> Iterator[str]:
    name = f"wf_api_{uuid.uuid4().hex[:12]}"
    janitor = pg_server.janitor(name, template_dbname=supabase_template)
    janitor.init()
    dsn = pg_server.dsn(name)
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        define(conn, chain(n=2))
        define(conn, {"name": "needs-input", "required_fields": ["email"],
                      "steps": [{"name": "a", "function": "echo", "action": "go"}]})
        define(conn, chain(name="switched-off", n=1))
        define(conn, {"name": "approval", "steps": [{"name": "approve", "wait_for": {"signal": "approved"}}]})
        conn.execute("select wf.deactivate('switched-off')")
    try:
        yield dsn
    finally:
        janitor.drop()


@contextmanager
def serve(dsn: str) -> Iterator[Api]:
    """The functions gateway (every function, this one included) pointed at dsn."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WF_DATABASE_URL", dsn)
        mp.setenv("SUPABASE_JWT_SECRET", JWT_SECRET)
        mp.setenv("WF_CORS_ORIGINS", f"{ALLOWED_ORIGIN}, http://localhost:5173")
        mp.delenv("SUPABASE_DB_URL", raising=False)
        mp.delenv("WF_API_WORKFLOWS", raising=False)
        gateway = Gateway().start()
    try:
        yield Api(gateway.url + "/workflows")
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def api(api_db) -> Iterator[Api]:
    with serve(api_db) as api:
        yield api


@pytest.fixture
def db_conn(api_db) -> Iterator[psycopg.Connection]:
    with psycopg.connect(api_db, autocommit=True, row_factory=dict_row) as c:
        yield c


class Api:
    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, *, user: str | None = None, bearer: str | None = None,
             body: Any = None, raw: bytes | None = None, headers: dict[str, str] | None = None,
             ) -> tuple[int, dict[str, str], Any]:
        """user: a signed-in user's id (a valid token is made); bearer: a token as it is."""
        all_headers = {"content-type": "application/json", **(headers or {})}
        if user is not None:
            bearer = token(user)
        if bearer is not None:
            all_headers["authorization"] = f"Bearer {bearer}"
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                status, got_headers, content = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            status, got_headers, content = exc.code, dict(exc.headers), exc.read()
        got_headers = {k.lower(): v for k, v in got_headers.items()}
        return status, got_headers, json.loads(content) if content else None

    def start(self, user: str, workflow: str = "chain", **body: Any) -> tuple[int, Any]:
        status, _, answer = self.call("POST", "/start", user=user, body={"workflow": workflow, **body})
        return status, answer

    def jobs(self, user: str, query: str = "") -> list[dict[str, Any]]:
        status, _, body = self.call("GET", f"/jobs{query}", user=user)
        assert status == 200, body
        return body["jobs"]


def new_user() -> str:
    return str(uuid.uuid4())


# ---- two users ---------------------------------------------------------------------------------


def test_each_user_starts_runs_and_sees_only_their_own(api, db_conn):
    alice, bob = new_user(), new_user()
    status, first = api.start(alice, input={"n": 1})
    assert status == 201, first
    assert first["workflow"] == "chain" and first["status"] == "pending" and first["created_at"]
    _, second = api.start(alice, input={"n": 2}, correlation_id="order-7")
    status, bobs = api.start(bob)
    assert status == 201

    # newest first, only the caller's
    assert [j["run_id"] for j in api.jobs(alice)] == [second["run_id"], first["run_id"]]
    assert [j["run_id"] for j in api.jobs(bob)] == [bobs["run_id"]]
    # the database agrees: the runs are owned by the users whose tokens started them
    owners = db_conn.execute("select id::text, owner::text from wf.runs where id = any(%s::uuid[])",
                             ([first["run_id"], second["run_id"], bobs["run_id"]],)).fetchall()
    assert {r["id"]: r["owner"] for r in owners} == {first["run_id"]: alice, second["run_id"]: alice,
                                                    bobs["run_id"]: bob}


def test_get_job_shows_the_run_and_its_steps_to_its_owner_only(api):
    alice, bob = new_user(), new_user()
    _, run = api.start(alice, input={"n": 1}, correlation_id="c-1")
    status, _, job = api.call("GET", f"/jobs/{run['run_id']}", user=alice)
    assert status == 200, job
    assert job["run_id"] == run["run_id"] and job["input"] == {"n": 1} and job["correlation_id"] == "c-1"
    assert job["progress"] == "0/2"
    assert [(s["name"], s["status"]) for s in job["steps"]] == [("s1", "queued"), ("s2", "waiting")]

    # someone else's run and a run that does not exist answer the same 404
    status, _, body = api.call("GET", f"/jobs/{run['run_id']}", user=bob)
    assert status == 404 and body == {"error": f"unknown run {run['run_id']}", "field": "id"}
    missing = str(uuid.uuid4())
    assert api.call("GET", f"/jobs/{missing}", user=bob)[2] == {"error": f"unknown run {missing}", "field": "id"}
    assert api.call("GET", "/jobs/not-a-uuid", user=bob)[0] == 404
    assert api.call("GET", "/jobs/%E0%A4%A", user=bob)[0] == 404


def test_runs_started_without_a_user_are_nobodys(api, db_conn):
    user = new_user()
    run_id = db_conn.execute("select wf.enqueue('chain')::text as id").fetchone()["id"]
    assert api.call("GET", f"/jobs/{run_id}", user=user)[0] == 404
    assert api.jobs(user) == []


def test_list_limit(api):
    user = new_user()
    runs = [api.start(user)[1]["run_id"] for _ in range(3)]
    assert [j["run_id"] for j in api.jobs(user, "?limit=2")] == runs[::-1][:2]
    for bad in ("0", "101", "abc", "1.5", "-1"):
        status, _, body = api.call("GET", f"/jobs?limit={bad}", user=user)
        assert (status, body["field"]) == (400, "limit"), bad


def test_idempotency_keys_are_per_user(api):
    alice, bob = new_user(), new_user()
    status, first = api.start(alice, idempotency_key="k-1", input={"a": 1})
    assert status == 201
    status, again = api.start(alice, idempotency_key="k-1", input={"a": 1})
    assert (status, again["run_id"]) == (200, first["run_id"])
    # the same key from another user starts that user's own run
    status, bobs = api.start(bob, idempotency_key="k-1", input={"a": 1})
    assert status == 201 and bobs["run_id"] != first["run_id"]
    # the same key with another input is the caller's mistake
    status, body = api.start(alice, idempotency_key="k-1", input={"a": 2})
    assert status == 400 and body["field"] == "idempotency_key" and "different input" in body["error"]
    assert "idempotency_key k-1 " in body["error"] and alice not in body["error"]


def test_reads_run_as_the_authenticated_role_under_row_level_security(api, db_conn):
    """Take `authenticated`'s grant away for a moment: the read fails, so it ran as that role
    (the superuser the function connects as would have read on)."""
    user = new_user()
    api.start(user)
    db_conn.execute("revoke select on wf.my_runs from authenticated")
    try:
        status, _, body = api.call("GET", "/jobs", user=user)
        assert (status, body) == (500, {"error": "internal error"})
    finally:
        db_conn.execute("grant select on wf.my_runs to authenticated")
    assert len(api.jobs(user)) == 1


# ---- auth ----------------------------------------------------------------------------------------


def test_a_missing_or_malformed_bearer_token_is_401(api):
    for headers in ({}, {"authorization": "Basic dXNlcjpwdw=="}, {"authorization": "Bearer"}):
        status, got, body = api.call("GET", "/jobs", headers=headers)
        assert status == 401, headers
        assert body["error"].startswith("missing bearer token")
        assert got["www-authenticate"].startswith("Bearer")


def test_a_forged_token_is_401(api):
    forged = token(new_user(), secret="not-the-project-secret-but-long-enough!!")
    assert api.call("GET", "/jobs", bearer=forged)[:3:2] == (401, {"error": "invalid token"})
    # a valid token whose payload was swapped for another user's keeps the old signature
    header, _, signature = token(new_user()).split(".")
    _, payload, _ = token(new_user()).split(".")
    assert api.call("GET", "/jobs", bearer=f"{header}.{payload}.{signature}")[0] == 401
    # alg "none"
    unsigned = _b64(b'{"alg":"none","typ":"JWT"}') + "." + token(new_user()).split(".")[1] + "."
    assert api.call("GET", "/jobs", bearer=unsigned)[0] == 401
    assert api.call("GET", "/jobs", bearer="garbage")[0] == 401


def test_an_expired_token_is_401(api):
    expired = token(new_user(), expires_in=-60)
    assert api.call("GET", "/jobs", bearer=expired)[:3:2] == (401, {"error": "token expired"})
    status, _, _ = api.call("POST", "/start", bearer=expired, body={"workflow": "chain"})
    assert status == 401


def test_a_token_without_a_user_is_401(api):
    # e.g. the anon or service_role key: no `sub`
    assert api.call("GET", "/jobs", bearer=token(None, role="anon"))[0] == 401
    status, _, body = api.call("GET", "/jobs", bearer=token("not-a-uuid"))
    assert (status, body["error"]) == (401, "token subject is not a user id")


def test_no_token_no_run(api, db_conn):
    before = db_conn.execute("select count(*) as n from wf.runs").fetchone()["n"]
    assert api.call("POST", "/start", body={"workflow": "chain"})[0] == 401
    assert db_conn.execute("select count(*) as n from wf.runs").fetchone()["n"] == before


# ---- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "field"), [
    ({}, "workflow"),
    ({"workflow": ""}, "workflow"),
    ({"workflow": 7}, "workflow"),
    ({"workflow": "chain", "input": [1, 2]}, "input"),
    ({"workflow": "chain", "input": "x"}, "input"),
    ({"workflow": "chain", "idempotency_key": 5}, "idempotency_key"),
    ({"workflow": "chain", "correlation_id": ""}, "correlation_id"),
    ({"workflow_id": "chain"}, "workflow_id"),
    ([], "body"),
])
def test_a_bad_body_is_400_naming_the_field(api, body, field):
    status, _, answer = api.call("POST", "/start", user=new_user(), body=body)
    assert status == 400, answer
    assert answer["field"] == field and field in answer["error"]


def test_a_body_that_is_not_json_is_400(api):
    status, _, answer = api.call("POST", "/start", user=new_user(), raw=b"{not json")
    assert (status, answer) == (400, {"error": "body is not JSON", "field": "body"})


def test_the_owner_signals_a_waiting_run_and_reads_its_final_result(api, db_conn):
    alice, bob = new_user(), new_user()
    _, run = api.start(alice, "approval")
    claim(db_conn, "_wf")  # what a worker does: the step starts waiting for "approved"
    path = f"/jobs/{run['run_id']}/signals/approved"

    # someone else's run answers as if it did not exist, and the signal is not kept
    status, _, body = api.call("POST", path, user=bob, body={"by": "bob"})
    assert (status, body) == (404, {"error": f"unknown run {run['run_id']}", "field": "id"})
    assert db_conn.execute("select count(*) as n from wf.signals").fetchone()["n"] == 0

    status, _, body = api.call("POST", path, user=alice, body={"by": "alice"})
    assert (status, body) == (202, {"run_id": run["run_id"], "signal": "approved", "accepted": True})
    status, _, job = api.call("GET", f"/jobs/{run['run_id']}", user=alice)
    assert (job["status"], job["final_result"]) == ("completed", {"approve": {"by": "alice"}})

    # the run is final now: a second signal is refused
    status, _, body = api.call("POST", path, user=alice, body={})
    assert status == 409 and body["field"] == "id"


def test_a_bad_signal_is_400_naming_the_field(api):
    alice = new_user()
    _, run = api.start(alice, "approval")
    status, _, body = api.call("POST", f"/jobs/{run['run_id']}/signals/approved", user=alice, raw=b"{nope")
    assert (status, body) == (400, {"error": "body is not JSON", "field": "body"})
    status, _, body = api.call("POST", f"/jobs/{run['run_id']}/signals/{'x' * 101}", user=alice, body={})
    assert status == 400 and body["field"] == "name"
    assert api.call("GET", f"/jobs/{run['run_id']}/signals/approved", user=alice)[0] == 405


def test_wf_errors_come_back_with_wfs_message(api):
    user = new_user()
    status, body = api.start(user, "no-such-workflow")
    assert (status, body) == (404, {"error": "unknown workflow no-such-workflow", "field": "workflow"})
    status, body = api.start(user, "needs-input", input={})
    assert status == 400 and body["field"] == "input"
    assert body["error"] == "workflow needs-input: input is missing required field(s) email"
    status, body = api.start(user, "switched-off")
    assert status == 400 and body["field"] == "workflow" and "inactive" in body["error"]
    assert api.jobs(user) == []


def test_unknown_paths_and_methods(api):
    user = new_user()
    assert api.call("GET", "/nope", user=user)[0] == 404
    status, headers, _ = api.call("DELETE", "/jobs", user=user)
    assert status == 405 and headers["allow"] == "GET, OPTIONS"
    assert api.call("GET", "/start", user=user)[0] == 405
    # the seed's spelling, /workflows/start after the function's name, works too
    status, _, body = api.call("POST", "/workflows/start", user=user, body={"workflow": "chain"})
    assert status == 201, body


# ---- CORS ------------------------------------------------------------------------------------------


def preflight_headers(origin: str) -> dict[str, str]:
    return {"origin": origin, "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"}


def test_preflight_from_an_allowed_origin_is_204_with_the_cors_headers(api):
    status, headers, body = api.call("OPTIONS", "/start", headers=preflight_headers(ALLOWED_ORIGIN))
    assert status == 204 and body is None
    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert {"GET", "POST"} <= {m.strip() for m in headers["access-control-allow-methods"].split(",")}
    allowed = {h.strip() for h in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "Origin" in headers["vary"]


def test_preflight_from_another_origin_is_403_without_allow_origin(api):
    for origin in (OTHER_ORIGIN, "null", "https://app.example.com.evil.net"):
        status, headers, _ = api.call("OPTIONS", "/start", headers=preflight_headers(origin))
        assert status == 403, origin
        assert "access-control-allow-origin" not in headers
    status, headers, _ = api.call("OPTIONS", "/jobs")  # no Origin at all
    assert status == 403 and "access-control-allow-origin" not in headers


def test_responses_carry_allow_origin_only_for_allowed_origins(api):
    user = new_user()
    _, headers, _ = api.call("GET", "/jobs", user=user, headers={"origin": ALLOWED_ORIGIN})
    assert headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    # errors too, so the browser lets the app read them
    _, headers, _ = api.call("GET", "/jobs", headers={"origin": "http://localhost:5173"})
    assert headers["access-control-allow-origin"] == "http://localhost:5173"
    _, headers, _ = api.call("GET", "/jobs", user=user, headers={"origin": OTHER_ORIGIN})
    assert "access-control-allow-origin" not in headers


# ---- a database without Supabase Auth ---------------------------------------------------------------


def test_without_auth_uid_a_start_fails_and_leaves_no_ownerless_run(db):
    with psycopg.connect(db, autocommit=True, row_factory=dict_row) as conn:
        define(conn, chain(n=1))
        with serve(db) as api:
            status, body = api.start(new_user())
        assert (status, body) == (500, {"error": "internal error"})
        assert conn.execute("select count(*) as n from wf.runs").fetchone()["n"] == 0
