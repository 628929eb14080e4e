"""The container's HEALTHCHECK (`python -m wf.healthcheck`): GET /healthz on the port the worker
serves it on, exit 0 when it answers 200, 1 otherwise (Docker's convention).

That port is the worker's own: the last `--metrics-port` on its command line, else WF_METRICS_PORT
in its environment. The worker is found among the container's processes (PID 1, or a child of an
init such as `docker run --init`); without one, this process's WF_METRICS_PORT is used."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

OPTION = "--metrics-port"
ENV = "WF_METRICS_PORT"


def worker_args(argv: Sequence[str]) -> list[str] | None:
    """The arguments after `wf worker` in a process's argv (`python /path/wf worker ...` once the
    script's shebang ran), or None when the process is no worker."""
    for i, arg in enumerate(argv[:-1]):
        if Path(arg).name == "wf" and argv[i + 1] == "worker":
            return list(argv[i + 2:])
    return None


def metrics_port(args: Sequence[str], environ: Mapping[str, str]) -> int | None:
    """The port `wf worker ARGS` serves /healthz on with ENVIRON (click's rule: an option given on
    the command line wins over its variable, the last one given wins), None when it serves none."""
    port: str | None = environ.get(ENV) or None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg == OPTION and i + 1 < len(args):
            port = args[i + 1]
        elif arg.startswith(OPTION + "="):
            port = arg.split("=", 1)[1]
    try:
        return int(port) if port else None
    except ValueError:
        return None


def _read(path: Path) -> list[str]:
    try:
        return [part.decode(errors="replace") for part in path.read_bytes().split(b"\0") if part]
    except OSError:  # gone, or not ours to read
        return []


def find_worker(proc: Path = Path("/proc")) -> tuple[list[str], dict[str, str]] | None:
    """The arguments and environment of the first `wf worker` process, lowest pid first."""
    pids = sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit() and int(p.name) != os.getpid())
    for pid in pids:
        args = worker_args(_read(proc / str(pid) / "cmdline"))
        if args is not None:
            environ = dict(item.split("=", 1) for item in _read(proc / str(pid) / "environ") if "=" in item)
            return args, environ
    return None


def check(timeout: float = 4.0, proc: Path = Path("/proc")) -> tuple[bool, str]:
    """(healthy, what was asked and what it answered)"""
    found = find_worker(proc)
    args, environ = found if found else ([], {})
    # a worker's environment this process may not read: the container's, which it inherits too
    environ = environ or dict(os.environ)
    port = metrics_port(args, environ)
    if port is None:
        return False, f"the worker serves no /healthz: neither {OPTION} nor {ENV} is set"
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200, f"{url}: {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def main() -> None:
    healthy, detail = check()
    print(detail)
    sys.exit(0 if healthy else 1)


if __name__ == "__main__":
    main()
