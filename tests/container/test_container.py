"""The Dockerfile's image, built and run with podman against the test database and the Deno
functions: a run completes, /healthz is healthy (the image's HEALTHCHECK too, on the port the
worker was given), the worker runs as uid 10001, and SIGTERM lets the call in flight finish and
exits 0. It runs as deploy/worker.yaml runs it: read-only root, no capabilities, no new privileges.

Building takes minutes (scripts/container-base debootstraps a stand-in for python:3.12-slim the
first time), so scripts/test-container runs this (WF_CONTAINER_TEST=1, which .ci/run calls);
plain scripts/test skips it. Host networking: the container reaches the host's PostgreSQL and
functions gateway on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from wfproc import SIGNING_SECRET, TOKEN, wait_until
from wfsql import define, enqueue, step_statuses

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/wf:test"
# what podman needs here: runc (crun cannot set the rlimits this machine allows) and rlimits it may set
PODMAN = ("podman", "--runtime", "runc")
ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=20000:20000")
FINAL = ("completed", "failed", "cancelled")

if os.environ.get("WF_CONTAINER_TEST") != "1":
    pytest.skip("builds and runs the image with podman, minutes: scripts/test-container runs it "
                "(WF_CONTAINER_TEST=1)", allow_module_level=True)


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=check)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image() -> str:
    """The image built from the Dockerfile (scripts/build-container); skipped where podman cannot run."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (scripts/test-container installs it)")
    info = podman("info", check=False)
    if info.returncode != 0:
        pytest.skip(f"podman cannot run here: {(info.stderr.strip().splitlines() or ['?'])[-1]}")
    built = subprocess.run([REPO / "scripts/build-container", IMAGE], cwd=REPO, capture_output=True, text=True,
                           timeout=1200)
    assert built.returncode == 0, built.stderr[-4000:]
    assert built.stdout.strip().splitlines()[-1] == IMAGE
    return IMAGE


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = f"wf-test-{uuid.uuid4().hex[:10]}"
    yield name
    podman("rm", "--force", "--time", "0", name, check=False)


def logs(name: str) -> str:
    out = podman("logs", name, check=False)
    return (out.stdout + out.stderr)[-4000:]


def test_the_image_runs_a_workflow_healthy_as_uid_10001_and_exits_0_on_sigterm(
        image: str, container: str, db: str, conn, gateway):
    config = podman("image", "inspect", "--format",
                    "{{.Config.User}}|{{json .Config.Healthcheck.Test}}|{{json .Config.Entrypoint}}", image).stdout
    user, healthcheck, entrypoint = config.strip().split("|")
    assert user == "10001:10001"
    assert "wf.healthcheck" in healthcheck, "--format docker keeps the HEALTHCHECK"
    assert entrypoint == '["wf","worker"]'

    define(conn, {"name": "boxed", "backoff": {"delays": [0]}, "steps": [
        {"name": "hello", "function": "echo", "action": "hello", "payload_template": {"who": "{{input.who}}"}},
        {"name": "slow", "function": "misbehave", "action": "slow", "payload_template": {"ms": "{{input.ms}}"}},
    ]})
    first = enqueue(conn, "boxed", {"who": "container", "ms": 0})
    # the port as an argument while the image says WF_METRICS_PORT=9090: the HEALTHCHECK follows the argument
    port = _free_port()
    podman("run", "--detach", "--name", container, *ULIMITS, "--network", "host",
           "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
           "--health-interval", "disable",
           "--env", f"WF_DATABASE_URL={db}", "--env", f"WF_FUNCTIONS_URL={gateway.url}",
           "--env", f"WF_FUNCTIONS_TOKEN={TOKEN}", "--env", f"WF_SIGNING_SECRET={SIGNING_SECRET}",
           image, "--metrics-port", str(port), "--poll-interval", "0.2", "--grace", "30")

    def run_status(run_id: str) -> str | None:
        state = podman("inspect", "--format", "{{.State.Status}}", container).stdout.strip()
        assert state == "running", f"the container is {state}\n{logs(container)}"
        status = conn.execute("select status from wf.runs where id = %s", (run_id,)).fetchone()["status"]
        return status if status in FINAL else None

    assert wait_until(lambda: run_status(first), 60, "the run", lambda: logs(container)) == "completed"
    [call] = gateway.calls("echo", first)  # the function checked the token and the signature
    assert call["payload"] == {"who": "container"}

    # /healthz from the host, and the image's own HEALTHCHECK inside the container
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        assert response.status == 200
    health = podman("healthcheck", "run", container, check=False)
    assert health.returncode == 0, health.stdout + health.stderr + logs(container)

    # the worker is PID 1 of the container, and runs as uid and gid 10001 (never root)
    pid = podman("inspect", "--format", "{{.State.Pid}}", container).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    assert re.search(r"^Uid:\s+10001\s+10001\s+10001\s+10001$", status, re.MULTILINE), status
    assert re.search(r"^Gid:\s+10001\s+10001\s+10001\s+10001$", status, re.MULTILINE), status
    assert "wf\0worker" in Path(f"/proc/{pid}/cmdline").read_text()

    # SIGTERM with a call in flight: the call finishes within --grace, the worker exits 0
    second = enqueue(conn, "boxed", {"who": "again", "ms": 2000})
    wait_until(lambda: step_statuses(conn, second).get("slow") == "running", 30, "the slow call",
               lambda: logs(container))
    podman("kill", "--signal", "TERM", container)
    exit_code = podman("wait", container, timeout=45).stdout.strip()
    assert exit_code == "0", logs(container)
    assert step_statuses(conn, second)["slow"] == "succeeded", logs(container)
    assert "worker_stopped" in logs(container)
