"""Browser fixtures: `wf dashboard` as a real process on a free port (with the token or read-only), one
headless Chromium for the module (Debian's /usr/bin/chromium driven by Playwright, never a downloaded
browser) and a fresh browser context per test. Without chromium or Playwright every test here is skipped,
saying why."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
WF = REPO / ".venv/bin/wf"
CHROMIUM = Path(os.environ.get("WF_TEST_CHROMIUM", "/usr/bin/chromium"))
DASHBOARD_TOKEN = "browser-test-token-0123456789"
STOP_SECONDS = 0.5

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None

SKIP_REASON = None
if sync_playwright is None:
    SKIP_REASON = "Playwright for Python is not installed (pip install -e '.[dev]')"
elif not CHROMIUM.exists():
    SKIP_REASON = f"no Chromium at {CHROMIUM} (apt-get install chromium; Playwright never downloads one here)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SKIP_REASON is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Dashboard:
    """One `wf dashboard` process; `token` is None for the read-only mode."""

    dsn: str
    token: str | None
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] = field(init=False)
    log_path: Path = field(init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __post_init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WF_") and k != "DATABASE_URL"}
        if self.token is not None:
            env["WF_DASHBOARD_TOKEN"] = self.token
        fd, name = tempfile.mkstemp(prefix="wf-dashboard.", suffix=".log")
        self.log_path = Path(name)
        self.proc = subprocess.Popen([str(WF), "dashboard", "--dsn", self.dsn, "--port", str(self.port)], cwd=REPO,
                                     env=env, stdout=fd, stderr=subprocess.STDOUT)
        os.close(fd)

    def tail(self, lines: int = 40) -> str:
        return "dashboard log:\n" + "\n".join(self.log_path.read_text().splitlines()[-lines:])

    def wait_ready(self, timeout: float = 20.0) -> Dashboard:
        """Until GET /healthz answers with the database up (its LISTEN connection made: live pages work)."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wf dashboard exited with {self.proc.returncode}\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    body = json.loads(response.read())
                    if body.get("database") == "up":
                        return self
                    last = str(body)
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise RuntimeError(f"wf dashboard not ready after {timeout:g}s ({last})\n{self.tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM; killed after STOP_SECONDS: a /live stream whose page has gone keeps aiohttp's graceful
        shutdown waiting for its full shutdown_timeout (3 s), which every test here would pay."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def start_dashboard() -> Iterator[Callable[..., Dashboard]]:
    """start_dashboard(dsn, token=DASHBOARD_TOKEN | None): a ready `wf dashboard`; stopped after the test."""
    started: list[Dashboard] = []

    def start(dsn: str, token: str | None = DASHBOARD_TOKEN) -> Dashboard:
        dashboard = Dashboard(dsn, token)
        started.append(dashboard)
        return dashboard.wait_ready()

    yield start
    for dashboard in started:
        dashboard.stop()


@pytest.fixture
def dashboard(db: str, start_dashboard: Callable[..., Dashboard]) -> Dashboard:
    """The dashboard over this test's database, with WF_DASHBOARD_TOKEN (actions after signing in)."""
    return start_dashboard(db)


@pytest.fixture
def readonly_dashboard(db: str, start_dashboard: Callable[..., Dashboard]) -> Dashboard:
    """The dashboard over this test's database without a token: read-only."""
    return start_dashboard(db, token=None)


# module, not session: Playwright's sync API keeps its asyncio loop running in the main thread while it is
# open, which would break the asyncio tests collected after this module (pytest-asyncio runs them there)
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if SKIP_REASON is not None:
        pytest.skip(SKIP_REASON)
    assert sync_playwright is not None
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium for the module (the whole of tests/browser): Debian's, never a download."""
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--headless"])
    try:
        yield chromium
    finally:
        chromium.close()


@dataclass
class Dialogs:
    """Every dialog a page opened (alert, confirm, …); confirms are accepted, alerts dismissed."""

    seen: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, dialog: Any) -> None:
        self.seen.append({"type": dialog.type, "message": dialog.message})
        with contextlib.suppress(Exception):
            if dialog.type == "confirm":
                dialog.accept()
            else:
                dialog.dismiss()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def dialogs() -> Dialogs:
    return Dialogs()


@pytest.fixture
def page(context: BrowserContext, dialogs: Dialogs) -> Page:
    """A page in a fresh context (no cookies), recording its dialogs; its EventSources are kept in
    window.__wfSources so a test can wait for the live connection before changing a run."""
    context.add_init_script("""
      (() => {
        const Native = window.EventSource;
        if (!Native) return;
        window.__wfSources = [];
        window.EventSource = function (url, init) {
          const source = new Native(url, init);
          window.__wfSources.push(source);
          return source;
        };
        window.EventSource.prototype = Native.prototype;
        Object.assign(window.EventSource, {CONNECTING: 0, OPEN: 1, CLOSED: 2});
      })();
    """)
    p = context.new_page()
    p.on("dialog", dialogs)
    return p

