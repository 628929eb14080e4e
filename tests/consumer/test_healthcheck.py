"""The image's HEALTHCHECK (`python -m wf.healthcheck`) asks /healthz on the port the worker really
serves it on: its --metrics-port, else its WF_METRICS_PORT (the image's default, 9090). The
container itself: tests/container/test_container.py."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from wf import healthcheck
from wf.healthcheck import metrics_port, worker_args


def test_the_worker_is_found_by_its_command_line_behind_its_shebang_or_an_init():
    assert worker_args(["/opt/wf/bin/python", "/opt/wf/bin/wf", "worker", "--grace", "30"]) == ["--grace", "30"]
    assert worker_args(["/sbin/docker-init", "--", "wf", "worker"]) == []
    assert worker_args(["/opt/wf/bin/python", "-m", "wf.healthcheck"]) is None
    assert worker_args(["/opt/wf/bin/python", "/opt/wf/bin/wf", "install"]) is None


def test_the_port_on_the_command_line_wins_over_the_environment():
    env = {"WF_METRICS_PORT": "9090"}
    assert metrics_port([], env) == 9090
    assert metrics_port(["--metrics-port", "9100"], env) == 9100
    assert metrics_port(["--metrics-port=9101", "--grace", "30"], env) == 9101
    assert metrics_port(["--metrics-port", "9100", "--metrics-port", "9102"], env) == 9102  # click: the last


def test_without_port_or_variable_the_worker_serves_no_healthz():
    assert metrics_port(["--grace", "30"], {}) is None
    assert metrics_port([], {"WF_METRICS_PORT": ""}) is None


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def fake_proc(root: Path, processes: dict[int, tuple[list[str], dict[str, str]]]) -> Path:
    """A /proc holding these processes' cmdline and environ, as the kernel writes them."""
    for pid, (argv, env) in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        (root / str(pid) / "environ").write_bytes(b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items()))
    (root / "self").mkdir()
    return root


def _closed_port() -> int:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    server.server_close()
    return server.server_address[1]


def test_the_check_asks_the_port_of_the_worker_s_argument_not_the_image_s_default(tmp_path, health_server):
    port = health_server.server_address[1]
    worker = ["/opt/wf/bin/python", "/opt/wf/bin/wf", "worker", "--metrics-port", str(port)]
    proc = fake_proc(tmp_path, {1: (worker, {"WF_METRICS_PORT": str(_closed_port())})})
    assert healthcheck.check(proc=proc) == (True, f"http://127.0.0.1:{port}/healthz: 200")


def test_the_check_follows_the_worker_s_environment_and_fails_on_503_or_nothing_listening(
        tmp_path, health_server, monkeypatch):
    port = health_server.server_address[1]
    worker = ["/opt/wf/bin/python", "/opt/wf/bin/wf", "worker"]
    monkeypatch.setenv("WF_METRICS_PORT", str(_closed_port()))  # the check's own: not the worker's
    proc = fake_proc(tmp_path / "a", {1: (worker, {"WF_METRICS_PORT": str(port)})})
    assert healthcheck.check(proc=proc)[0] is True
    monkeypatch.setattr(_Health, "status", 503)
    assert healthcheck.check(proc=proc) == (False, f"http://127.0.0.1:{port}/healthz: 503")

    nobody = fake_proc(tmp_path / "b", {1: (worker, {"WF_METRICS_PORT": str(_closed_port())})})
    healthy, detail = healthcheck.check(proc=nobody)
    assert not healthy and "refused" in detail.lower()


def test_without_a_port_the_check_says_the_worker_serves_no_healthz(tmp_path, monkeypatch):
    monkeypatch.delenv("WF_METRICS_PORT", raising=False)
    proc = fake_proc(tmp_path, {7: (["/opt/wf/bin/python", "/opt/wf/bin/wf", "worker"], {"PATH": "/usr/bin"})})
    assert healthcheck.check(proc=proc) == (
        False, "the worker serves no /healthz: neither --metrics-port nor WF_METRICS_PORT is set")
