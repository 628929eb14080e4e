"""Real processes for end-to-end and fault tests: the Deno functions gateway, `wf worker`,
and waiting on the database (polled every 50 ms against a deadline, never a fixed sleep)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg

REPO = Path(__file__).resolve().parents[1]
WF = REPO / ".venv/bin/wf"

TOKEN = "wf-test-token"
SIGNING_SECRET = "whsec_" + base64.b64encode(b"wf test signing secret, 32 bytes").decode()
WRONG_SECRET = "whsec_" + base64.b64encode(b"some other secret of 32 bytes!!!").decode()
FINAL_RUN = ("completed", "failed", "cancelled")
POLL = 0.05

T = TypeVar("T")


# ---- waiting ---------------------------------------------------------------


def wait_until(probe: Callable[[], T], timeout: float = 15.0, what: str = "condition",
               diagnose: Callable[[], str] | None = None) -> T:
    """Poll probe() every 50 ms until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{diagnose()}" if diagnose else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(POLL)


def run_statuses(conn: psycopg.Connection, run_ids: Iterable[str]) -> dict[str, str]:
    rows = conn.execute("select id::text as id, status from wf.runs where id = any(%s::uuid[])",
                        (list(run_ids),)).fetchall()
    return {r["id"]: r["status"] for r in rows}


def overview(conn: psycopg.Connection, run_ids: Iterable[str]) -> list[dict[str, Any]]:
    return conn.execute("select * from wf.runs_overview where run_id = any(%s::uuid[])", (list(run_ids),)).fetchall()


def wait_final(conn: psycopg.Connection, run_ids: str | Iterable[str], timeout: float = 20.0,
               worker: WorkerProcess | None = None) -> dict[str, str]:
    """Wait until every run is completed, failed or cancelled; returns run id → status.
    Fails early, with the worker's log, when the worker process died."""
    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)

    def probe() -> dict[str, str] | None:
        if worker is not None and worker.proc.poll() is not None:
            raise AssertionError(f"worker exited with {worker.proc.returncode}\n{worker.tail()}")
        statuses = run_statuses(conn, ids)
        return statuses if all(statuses.get(i) in FINAL_RUN for i in ids) else None

    def diagnose() -> str:
        open_runs = [r for r in overview(conn, ids) if r["status"] not in FINAL_RUN]
        lines = [f"{r['run_id']} {r['status']} {r['progress']} {r['current_steps']} {r['last_error']}"
                 for r in open_runs[:10]]
        return "\n".join([f"{len(open_runs)} open runs:", *lines, worker.tail() if worker else ""])

    return wait_until(probe, timeout, f"{len(ids)} run(s) to finish", diagnose)


# ---- the functions gateway ---------------------------------------------------


@dataclass
class Gateway:
    """scripts/serve-functions on a free port; the functions check TOKEN and `secret`."""

    secret: str = SIGNING_SECRET
    token: str = TOKEN
    url: str = ""
    proc: subprocess.Popen[str] | None = None
    stderr_path: Path | None = None

    def start(self, timeout: float = 90.0) -> Gateway:
        env = {**os.environ, "WF_FUNCTIONS_TOKEN": self.token, "WF_SIGNING_SECRET": self.secret}
        fd, name = tempfile.mkstemp(prefix="wf-gateway.", suffix=".log")
        self.stderr_path = Path(name)
        self.proc = subprocess.Popen([str(REPO / "scripts/serve-functions"), "--port", "0"], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=fd, text=True)
        os.close(fd)
        ready = threading.Event()

        def read_stdout() -> None:
            # keeps draining after the readiness line, so a chatty function never blocks on a full pipe
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                if not ready.is_set() and "gateway listening on " in line:
                    self.url = line.split("gateway listening on ", 1)[1].strip()
                    ready.set()

        threading.Thread(target=read_stdout, daemon=True, name="gateway-stdout").start()
        deadline = time.monotonic() + timeout
        while not ready.wait(POLL):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"functions gateway did not start:\n{self.stderr_path.read_text()[-3000:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.stderr_path is not None:
            self.stderr_path.unlink(missing_ok=True)

    def request(self, function: str, method: str = "GET", body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/{function}", data=data, method=method,
                                     headers={"authorization": f"Bearer {self.token}", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def calls(self, function: str = "echo", run_id: str | None = None) -> list[dict[str, Any]]:
        """What a recording function (echo, messages, send-email) received, optionally for one run."""
        status, body = self.request(function)
        assert status == 200, body
        return [c for c in body["calls"] if run_id is None or c["headers"]["x-wf-run"] == run_id]


# ---- the worker ------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One `wf worker` process with its JSON log in a temporary file."""

    dsn: str
    functions_url: str
    args: tuple[str, ...] = ("--poll-interval", "0.2")
    token: str | None = TOKEN
    secret: str | None = SIGNING_SECRET
    proc: subprocess.Popen[bytes] = field(init=False)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WF_") and k != "DATABASE_URL"}
        env.update(WF_DATABASE_URL=self.dsn, WF_FUNCTIONS_URL=self.functions_url)
        if self.token is not None:
            env["WF_FUNCTIONS_TOKEN"] = self.token
        if self.secret is not None:
            env["WF_SIGNING_SECRET"] = self.secret
        fd, name = tempfile.mkstemp(prefix="wf-worker.", suffix=".log")
        self.log_path = Path(name)
        self.proc = subprocess.Popen([str(WF), "worker", *self.args], cwd=REPO, env=env, stdout=fd,
                                     stderr=subprocess.STDOUT)
        os.close(fd)

    def logs(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records

    def tail(self, lines: int = 40) -> str:
        return "worker log:\n" + "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def wait_started(self, timeout: float = 15.0) -> None:
        def started() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}\n{self.tail()}")
            return any(r.get("event") == "worker_started" for r in self.logs())

        wait_until(started, timeout, "the worker to start")

    def send(self, sig: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait for the exit status."""
        self.send(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        self.send(signal.SIGKILL)
        self.proc.wait()

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.send(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log_path.unlink(missing_ok=True)


def run_once(dsn: str, functions_url: str, *args: str, secret: str | None = SIGNING_SECRET,
             timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`wf worker --once`: drains what is ready and exits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WF_") and k != "DATABASE_URL"}
    env.update(WF_DATABASE_URL=dsn, WF_FUNCTIONS_URL=functions_url, WF_FUNCTIONS_TOKEN=TOKEN)
    if secret is not None:
        env["WF_SIGNING_SECRET"] = secret
    return subprocess.run([str(WF), "worker", "--once", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
