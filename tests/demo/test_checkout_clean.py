"""Installing Deno and running the demo leave a fresh clone as it was: what they write (.venv,
node_modules, .deno-cache) is ignored by git, and nothing tracked is rewritten (package-lock.json
by npm, supabase/functions/deno.lock by Deno)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from wfsql import REPO

# git as on a machine with no settings of its own: a global excludes file must not hide a stray file
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(*args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | GIT_ENV
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def status(checkout: Path) -> str:
    return git("status", "--porcelain", "--untracked-files=all", cwd=checkout)


def run(checkout: Path, *command: str) -> str:
    """A script of the clone, from the clone, as a new user runs it (no database or Deno cache given)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("WF_DATABASE_URL", "DATABASE_URL", "DENO_DIR") and not k.startswith("GIT_")}
    result = subprocess.run([str(checkout / command[0]), *command[1:]], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def clone() -> Iterator[Path]:
    """A fresh clone of the repository's HEAD, removed afterwards (it grows a .venv and node_modules)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    parent = Path(tempfile.mkdtemp(prefix="wf-clone."))
    parent.chmod(0o755)  # the demo's PostgreSQL runs as postgres when we are root, from this directory
    try:
        git("clone", "--quiet", str(REPO), str(parent / "wf"), cwd=parent)
        yield parent / "wf"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_installing_deno_and_running_the_demo_leave_a_fresh_clone_clean(clone):
    assert status(clone) == ""
    run(clone, "scripts/install-deno")
    assert status(clone) == "", "scripts/install-deno changed the checkout"
    output = run(clone, "scripts/demo", "--once")
    assert "done (--once)" in output
    assert status(clone) == "", "scripts/demo --once changed the checkout"
    # they did write into the tree, so the emptiness above is .gitignore's doing
    ignored = git("status", "--porcelain", "--ignored", cwd=clone).split()
    assert {".venv/", "node_modules/", ".deno-cache/"} <= set(ignored), ignored
