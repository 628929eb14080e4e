"""One round of scripts/bench-compare: install the wf of one checkout (--repo) into a fresh database,
enqueue --runs three-step runs of a no-op function, drain them with that checkout's worker, and print
steps/s from the first claim to the last answer (the database's clock)."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, required=True, help="the checkout whose sql/ and worker are measured")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--functions-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    consumer = str(args.repo.resolve() / "consumer")
    sys.path.insert(0, consumer)
    import asyncpg
    from wf.install import install

    await install(args.dsn, cron=False)
    conn = await asyncpg.connect(args.dsn)
    await conn.execute("select wf.define($1::jsonb)", '{"name": "compare", "steps": ['
                       + ", ".join(f'{{"name": "s{i}", "function": "noop", "action": "go", '
                                   f'"payload_template": {{"run": "{{{{ n }}}}", "i": {i}}}}}' for i in range(3))
                       + "]}")
    await conn.execute("select wf.enqueue('compare', jsonb_build_object('n', n)) from generate_series(1, $1) n",
                       args.runs)
    await conn.execute("checkpoint")
    env = {**os.environ, "PYTHONPATH": consumer, "WF_DATABASE_URL": args.dsn,
           "WF_FUNCTIONS_URL": args.functions_url, "WF_FUNCTIONS_TOKEN": args.token}
    worker = subprocess.Popen([sys.executable, "-c", "from wf.cli import main; main()", "worker",
                               "--concurrency", str(args.concurrency)],
                              env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while await conn.fetchval("select exists (select 1 from wf.runs where status <> 'completed')"):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench-compare: the worker stopped or the drain took over 10 minutes")
            await asyncio.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(30)
    first, last = await conn.fetchrow("select extract(epoch from min(started_at))::float8, "
                                      "extract(epoch from max(finished_at))::float8 from wf.steps")
    await conn.close()
    print(f"{args.runs * 3 / (last - first):.0f}")


if __name__ == "__main__":
    asyncio.run(main())
