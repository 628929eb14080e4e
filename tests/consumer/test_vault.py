"""The worker's secrets from Supabase Vault (README, Secrets from Supabase Vault): WF_FUNCTIONS_TOKEN_SECRET and
WF_SIGNING_SECRET_SECRET name rows of `vault.decrypted_secrets`, read at start and again on SIGHUP. A real
`wf worker` process, a stand-in of Vault's schema (a `vault.secrets` table and the `vault.decrypted_secrets`
view over it, with the columns Supabase's has), and a small HTTP server that records what each call carried."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from standardwebhooks.webhooks import Webhook
from wfproc import REPO, WF, wait_final, wait_until
from wfsql import chain, define, enqueue

OLD_TOKEN = "vault-token-old-5c1e9f"
NEW_TOKEN = "vault-token-new-a7d203"
OLD_SIGNING = "whsec_" + base64.b64encode(b"old vault signing secret, 32 by").decode()
NEW_SIGNING = "whsec_" + base64.b64encode(b"new vault signing secret, 32 by").decode()
TOKEN_NAME = "wf_functions_token"
SIGNING_NAME = "wf_signing_secret"

VAULT_STAND_IN = """
create schema vault;
create table vault.secrets (
  id          uuid primary key default gen_random_uuid(),
  name        text unique,
  description text not null default '',
  secret      text not null,
  key_id      uuid,
  nonce       bytea,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);
-- Supabase decrypts here; the stand-in keeps the secret in clear
create view vault.decrypted_secrets as
select id, name, description, secret, secret as decrypted_secret, key_id, nonce, created_at, updated_at
from vault.secrets;
"""


# ---- the recording functions server --------------------------------------------------------------


@dataclass
class Recorder:
    """Answers every POST with success and keeps its headers and body."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                recorder.calls.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": body.decode()})
                answer = b'{"success": true, "data": {}}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def for_run(self, run_id: str) -> dict[str, Any]:
        [call] = [c for c in self.calls if c["headers"]["x-wf-run"] == run_id]
        return call


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), rec.handler())
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/functions/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


# ---- the vault stand-in and the worker -------------------------------------------------------------------


@pytest.fixture
def vault(conn: psycopg.Connection) -> psycopg.Connection:
    conn.execute(VAULT_STAND_IN)
    conn.execute("insert into vault.secrets (name, secret) values (%s, %s), (%s, %s)",
                 (TOKEN_NAME, OLD_TOKEN, SIGNING_NAME, OLD_SIGNING))
    define(conn, chain("one", n=1, function="rec"))
    return conn


def set_secret(conn: psycopg.Connection, name: str, value: str) -> None:
    conn.execute("update vault.secrets set secret = %s, updated_at = now() where name = %s", (value, name))


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def text(self) -> str:
        return self.log_path.read_text()

    def events(self) -> list[dict[str, Any]]:
        records = []
        for line in self.text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records

    def count(self, event: str) -> int:
        return sum(1 for r in self.events() if r.get("event") == event)


def worker_env(dsn: str, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WF_") and k != "DATABASE_URL"}
    return {**env, "WF_DATABASE_URL": dsn, "WF_FUNCTIONS_URL": url, **extra}


VAULT_ENV = {"WF_FUNCTIONS_TOKEN_SECRET": TOKEN_NAME, "WF_SIGNING_SECRET_SECRET": SIGNING_NAME}


@pytest.fixture
def start_worker(db: str, recorder: Recorder) -> Iterator[Any]:
    started: list[Worker] = []

    def start(**extra: str) -> Worker:
        fd, name = tempfile.mkstemp(prefix="wf-vault-worker.", suffix=".log")
        proc = subprocess.Popen([str(WF), "worker", "--poll-interval", "0.2"], cwd=REPO,
                                env=worker_env(db, recorder.url, **(extra or VAULT_ENV)), stdout=fd,
                                stderr=subprocess.STDOUT)
        os.close(fd)
        worker = Worker(proc, Path(name))
        started.append(worker)

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"worker exited with {proc.returncode}:\n{worker.text()}")
            return worker.count("worker_started") > 0

        wait_until(up, 20, "the worker to start")
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
            try:
                worker.proc.wait(15)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()
        worker.log_path.unlink(missing_ok=True)


def one_call(conn: psycopg.Connection, recorder: Recorder, key: str) -> dict[str, Any]:
    run_id = enqueue(conn, "one", {}, key=key)
    assert wait_final(conn, run_id, 20) == {run_id: "completed"}
    return recorder.for_run(run_id)


def signed_with(call: dict[str, Any], secret: str) -> bool:
    try:
        Webhook(secret).verify(call["body"], call["headers"])
    except Exception:
        return False
    return True


def sighup_and_wait(worker: Worker, event: str) -> None:
    before = worker.count(event)
    worker.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: worker.count(event) > before, 15, f"{event} after SIGHUP")


def refused(db: str, recorder: Recorder, **extra: str) -> str:
    """`wf worker --once` that must refuse to start: exit 2, one line on stderr, no traceback."""
    result = subprocess.run([str(WF), "worker", "--once"], cwd=REPO, env=worker_env(db, recorder.url, **extra),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ---- at start --------------------------------------------------------------------------------------------


def test_the_worker_calls_with_the_token_and_signing_secret_read_from_vault(vault, recorder, start_worker):
    worker = start_worker()
    call = one_call(vault, recorder, "first")
    assert call["headers"]["authorization"] == f"Bearer {OLD_TOKEN}"
    assert signed_with(call, OLD_SIGNING)
    [read] = [r for r in worker.events() if r.get("event") == "secrets_read"]
    assert (read["token"], read["signing_secret"]) == (f"vault:{TOKEN_NAME}", f"vault:{SIGNING_NAME}")


def test_a_missing_vault_secret_refuses_to_start_naming_it(db, vault, recorder):
    line = refused(db, recorder, WF_FUNCTIONS_TOKEN_SECRET="no_such_secret")
    assert line == ("wf: Vault secret no_such_secret (WF_FUNCTIONS_TOKEN_SECRET) does not exist in "
                    "vault.decrypted_secrets")


def test_an_empty_vault_secret_refuses_to_start_naming_it(db, vault, recorder):
    set_secret(vault, SIGNING_NAME, "")
    line = refused(db, recorder, **VAULT_ENV)
    assert line == f"wf: Vault secret {SIGNING_NAME} (WF_SIGNING_SECRET_SECRET) is empty"


def test_without_vault_the_worker_refuses_to_start_naming_the_secret(db, recorder):
    line = refused(db, recorder, WF_FUNCTIONS_TOKEN_SECRET=TOKEN_NAME)
    assert line.startswith(f"wf: cannot read Vault secret(s) {TOKEN_NAME} from vault.decrypted_secrets: "), line
    assert "does not exist" in line


def test_a_secret_given_both_as_a_value_and_by_its_vault_name_is_a_usage_error(db, recorder):
    line = refused(db, recorder, WF_FUNCTIONS_TOKEN="plain", WF_FUNCTIONS_TOKEN_SECRET=TOKEN_NAME)
    assert line == "wf: set WF_FUNCTIONS_TOKEN or WF_FUNCTIONS_TOKEN_SECRET (its name in Supabase Vault), not both"


# ---- SIGHUP ---------------------------------------------------------------------------------------------


def test_sighup_rotates_the_secrets_without_a_restart(vault, recorder, start_worker):
    worker = start_worker()
    assert one_call(vault, recorder, "before")["headers"]["authorization"] == f"Bearer {OLD_TOKEN}"
    set_secret(vault, TOKEN_NAME, NEW_TOKEN)
    set_secret(vault, SIGNING_NAME, NEW_SIGNING)
    sighup_and_wait(worker, "secrets_reloaded")
    call = one_call(vault, recorder, "after")
    assert call["headers"]["authorization"] == f"Bearer {NEW_TOKEN}"
    assert signed_with(call, NEW_SIGNING) and not signed_with(call, OLD_SIGNING)
    assert worker.proc.poll() is None and worker.count("worker_started") == 1  # the same process, not restarted


def test_a_failed_reread_keeps_the_old_secrets_and_logs_one_line_naming_the_secret(vault, recorder, start_worker):
    worker = start_worker()
    set_secret(vault, TOKEN_NAME, "   ")
    sighup_and_wait(worker, "secrets_reload_failed")
    [failed] = [r for r in worker.events() if r.get("event") == "secrets_reload_failed"]
    assert failed["level"] == "warning"
    assert failed["error"] == f"Vault secret {TOKEN_NAME} (WF_FUNCTIONS_TOKEN_SECRET) is empty"
    call = one_call(vault, recorder, "after")
    assert call["headers"]["authorization"] == f"Bearer {OLD_TOKEN}"
    assert signed_with(call, OLD_SIGNING)


def test_the_worker_never_logs_a_secret_value(vault, recorder, start_worker):
    worker = start_worker()
    one_call(vault, recorder, "before")
    set_secret(vault, TOKEN_NAME, NEW_TOKEN)
    sighup_and_wait(worker, "secrets_reloaded")
    set_secret(vault, SIGNING_NAME, "whsec_not base64!")
    sighup_and_wait(worker, "secrets_reload_failed")
    one_call(vault, recorder, "after")
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(15) == 0
    text = worker.text()
    assert "secrets_reloaded" in text and "secrets_reload_failed" in text and "worker_stopped" in text
    for value in (OLD_TOKEN, NEW_TOKEN, OLD_SIGNING, NEW_SIGNING, OLD_SIGNING[6:], NEW_SIGNING[6:], "not base64"):
        assert value not in text
