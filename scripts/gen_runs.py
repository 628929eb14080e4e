"""Fills a wf database with a large, realistic population of runs through wf's SQL API
(run by scripts/gen-runs; `generate()` is reused by scripts/bench-dashboard and by tests).

Everything goes through the functions a worker and an app call — wf.define, wf.enqueue,
wf.claim, wf.complete_batch, wf.fail, wf.signal, wf.cancel — set-based and in big batches
(no HTTP, no edge functions). Five workflows (user-signup 3-step chain, order-fulfilment
fan-out/fan-in of 5 steps, invoice-payment 2-step chain, record-sync 1 step, document-review
4-step chain waiting for a signal), inputs with an id, an email and a short text, a
correlation id on about 30% of the runs.

1. one completed run of `catalog-import`, a workflow of `big_steps` steps (a start step, layers
   of up to 10 steps each waiting for one or two of the layer before, a final fan-in);
2. `finished` runs in chunks of 20,000, two connections ("lanes") at once — each enqueues its
   chunk and claims and answers whatever the stages hold (a run's plan, filed when it was
   enqueued, says how each of its steps answers) until its chunk's runs are final:
   ≈ 94% completed (some after a retried attempt, some order runs with a failed `sms` step
   that the run went on without), 4% failed (a dead step in wf_dlq: an answer that cannot be
   retried, or record-sync's retries used up), 2% cancelled (half before they started, half
   with a step in flight). Each chunk is then spread over its share of the last 30 days by
   back-dating its runs, steps, events, signals and archived queue messages (in generation
   order, so the tables stay in time order as they would in production);
3. `running` runs left open, not back-dated: ≈ 45% pending (queued, never claimed), 25% with
   their first step claimed and running, 15% past their first step with the next ones
   running, 10% past their first step with the next ones queued, 4% retrying (a 503 with
   Retry-After: 600), 1% document reviews waiting for their `approved` signal;
4. `vacuum analyze`, and wf's BRIN index (events.at) made again (see summarize_brin).

The open runs' claimed steps keep their message for the visibility timeout (135 s); nothing
else claims here, so they stay as they are until a worker or wf.tick runs. A second generate()
on the same database adds to what is there (its claims leave other runs' steps running).
Its cost is wf's own: ≈ 1.2 ms of PostgreSQL CPU per run (enqueue ≈ half, wf.claim most of the rest).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from wf import db

SPREAD = timedelta(days=30)  # finished runs are spread over the last 30 days
CHUNK = 20_000  # runs enqueued (and finished) per statement group
CLAIM_QTY = 1000  # wf.claim's largest batch
ENQUEUE_BATCH = 5000  # runs per enqueue transaction: each holds a lock per run (max_locks_per_transaction)
BIG_WORKFLOW = "catalog-import"
COMPLETED, FAILED = 0.94, 0.04  # of the finished runs; the rest are cancelled
CORRELATED = 0.3  # share of runs with a correlation id
CUSTOMERS = 50_000  # distinct correlation ids (about 6 runs each at 1M)
# texts for the short-text field of every input: the dashboard's search in the input finds them
TEXTS = ["express delivery", "gift wrap please", "leave at the front door", "call before arrival",
         "monthly subscription", "annual plan upgrade", "refund requested", "second reminder",
         "quarterly report", "signed contract", "new listing photos", "price changed",
         "welcome aboard", "priority support", "invoice overdue", "address updated"]
FIRST = ["anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jonas",
         "karla", "liam", "mia", "noah", "olga", "paul", "rosa", "sami", "tina", "yusuf"]
LAST = ["schmidt", "garcia", "rossi", "novak", "smith", "dubois", "jansen", "kowalski",
        "silva", "berg", "okafor", "tanaka", "larsen", "moreau", "weber", "costa"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "corp.example.com"]

FLOWS: list[dict[str, Any]] = [
    {"name": "user-signup", "description": "A new user: profile, welcome email, analytics",
     "required_fields": ["user_id", "email"],
     "steps": [
         {"name": "create_profile", "function": "profiles", "action": "create",
          "payload_template": {"userId": "{{ user_id }}", "name": "{{ name }}", "plan": "{{ plan }}"}},
         {"name": "welcome_email", "function": "send-email", "action": "send",
          "payload_template": {"template_id": "welcome", "recipient_email": "{{ email }}",
                               "variables": {"name": "{{ name }}"}}},
         {"name": "track", "function": "analytics", "action": "track",
          "payload_template": {"event": "user_signed_up", "userId": "{{ user_id }}"}}]},
    {"name": "order-fulfilment", "description": "Reserve, then email, SMS and CRM in parallel, then track",
     "required_fields": ["order_id", "email", "phone"],
     "steps": [
         {"name": "reserve", "function": "inventory", "action": "reserve",
          "payload_template": {"orderId": "{{ order_id }}", "note": "{{ note }}"}},
         {"name": "email", "function": "send-email", "action": "send", "depends_on": ["reserve"],
          "payload_template": {"template_id": "order", "recipient_email": "{{ email }}"}},
         {"name": "sms", "function": "sms", "action": "send", "depends_on": ["reserve"], "on_failure": "continue",
          "payload_template": {"to": "{{ phone }}", "text": "Order {{ order_id }} reserved"}},
         {"name": "sync", "function": "crm-sync", "action": "upsert", "depends_on": ["reserve"],
          "payload_template": {"table": "order", "recordId": "{{ order_id }}"}},
         {"name": "track", "function": "analytics", "action": "track", "depends_on": ["email", "sms", "sync"],
          "payload_template": {"event": "order_fulfilled", "properties": {"order_id": "{{ order_id }}"}}}]},
    {"name": "invoice-payment", "description": "Charge an invoice, then send the receipt",
     "required_fields": ["invoice_id", "email", "amount_cents"],
     "max_retries": 3, "backoff": {"delays": [0, 30, 300]},
     "steps": [
         {"name": "charge", "function": "payments", "action": "charge",
          "payload_template": {"invoiceId": "{{ invoice_id }}", "amount": "{{ amount_cents }}",
                               "description": "{{ description }}"}},
         {"name": "receipt", "function": "send-email", "action": "send",
          "payload_template": {"template_id": "receipt", "recipient_email": "{{ email }}",
                               "variables": {"invoice_id": "{{ invoice_id }}"}}}]},
    {"name": "record-sync", "description": "Push one changed record to the CRM; one immediate retry",
     "required_fields": ["table", "record_id"],
     "max_retries": 1, "backoff": {"delays": [0]},
     "steps": [
         {"name": "sync", "function": "crm-sync", "action": "upsert",
          "payload_template": {"table": "{{ table }}", "recordId": "{{ record_id }}", "change": "{{ change }}",
                               "owner": "{{ email }}"}}]},
    {"name": "document-review", "description": "Extract and classify a document, wait for approval, publish",
     "required_fields": ["document_id", "email"],
     "steps": [
         {"name": "extract", "function": "documents", "action": "extract",
          "payload_template": {"documentId": "{{ document_id }}"}},
         {"name": "classify", "function": "ai-classify", "action": "classify",
          "payload_template": {"documentId": "{{ document_id }}", "title": "{{ title }}"}},
         {"name": "approve", "wait_for": {"signal": "approved"}},
         {"name": "publish", "function": "cms", "action": "publish",
          "payload_template": {"documentId": "{{ document_id }}", "notify": "{{ email }}"}}]},
]
WEIGHTS = [25, 12, 25, 30, 8]  # share of runs per workflow, in FLOWS order: 2.5 steps per run
# what a dead step answered, by workflow and step: (HTTP status, retryable, error)
ERRORS: dict[tuple[str, str], tuple[int, bool, str]] = {
    ("user-signup", "create_profile"): (409, False, "HTTP 409: a profile for this user already exists"),
    ("user-signup", "welcome_email"): (422, False, "HTTP 422: recipient address rejected"),
    ("user-signup", "track"): (400, False, "HTTP 400: unknown event property"),
    ("order-fulfilment", "reserve"): (409, False, "HTTP 409: item out of stock"),
    ("order-fulfilment", "email"): (422, False, "HTTP 422: recipient address rejected"),
    ("order-fulfilment", "sync"): (400, False, "HTTP 400: field 'recordId' is invalid"),
    ("order-fulfilment", "track"): (400, False, "HTTP 400: unknown event property"),
    ("invoice-payment", "charge"): (402, False, "HTTP 402: card declined"),
    ("invoice-payment", "receipt"): (422, False, "HTTP 422: recipient address rejected"),
    ("record-sync", "sync"): (503, True, "HTTP 503: CRM API unavailable"),
    ("document-review", "extract"): (415, False, "HTTP 415: unsupported file type"),
    ("document-review", "classify"): (422, False, "HTTP 422: document could not be classified"),
    ("document-review", "publish"): (409, False, "HTTP 409: the page was changed meanwhile"),
}
SMS_FAILED = (400, False, "HTTP 400: phone number is not reachable by SMS")
TRANSIENT = (503, True, "HTTP 503: upstream timed out")
CONTINUE_FAILED_SHARE = 0.08  # completed order runs whose sms step failed (on_failure continue)
TRANSIENT_SHARE = 0.06  # completed payment and record-sync runs that needed a second attempt


def log(message: str) -> None:
    print(f"gen-runs: {message}", file=sys.stderr, flush=True)


def server_cpu(backend_pid: int) -> float | None:
    """CPU seconds of the PostgreSQL server a backend of ours belongs to (postmaster and every
    process it runs or has reaped), when it runs on this machine; else None."""
    try:
        import psutil

        postmaster = psutil.Process(backend_pid).parent()
        if postmaster is None or "postgres" not in postmaster.name():
            return None
        times = postmaster.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in postmaster.children():
            try:
                t = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system
        return total
    except Exception:  # not local, not ours to read, no psutil: the figure is left out
        return None


@dataclass(frozen=True)
class Flow:
    """A workflow's shape as the generator needs it."""

    name: str
    steps: tuple[str, ...]
    kinds: dict[str, str]
    first: frozenset[str]  # steps without dependencies
    failable: tuple[str, ...]  # function steps whose death fails the run

    @classmethod
    def of(cls, definition: dict[str, Any]) -> Flow:
        steps = definition["steps"]
        names = tuple(s["name"] for s in steps)
        first = frozenset(s["name"] for i, s in enumerate(steps) if s.get("depends_on", [] if i == 0 else [0]) == [])
        kinds = {s["name"]: ("wait_for" if "wait_for" in s else "function") for s in steps}
        failable = tuple(s["name"] for s in steps if "wait_for" not in s and s.get("on_failure") != "continue")
        return cls(definition["name"], names, kinds, first, failable)


FLOW = [Flow.of(d) for d in FLOWS]
MULTI_STEP = [i for i, f in enumerate(FLOW) if len(f.steps) > 1]
DOCUMENT_REVIEW = next(i for i, f in enumerate(FLOW) if f.name == "document-review")


def big_definition(steps: int) -> dict[str, Any]:
    """`steps` steps: a start, layers of up to 10 steps each waiting for one or two steps of the
    layer before, and a final fan-in (a chain below 3 steps)."""
    functions = ["catalog", "images", "search-index"]
    verbs = ["fetch", "parse", "validate", "resize", "enrich", "price", "index", "store"]
    if steps < 3:
        return {"name": BIG_WORKFLOW, "description": "A long import (benchmark of the run detail)",
                "steps": [{"name": f"step_{i}", "function": "catalog", "action": "run"} for i in range(steps)]}
    width = 10
    out: list[dict[str, Any]] = [{"name": "start", "function": "catalog", "action": "start",
                                  "payload_template": {"batch": "{{ batch_id }}"}}]
    previous = ["start"]
    layer: list[str] = []
    middle = steps - 2
    for i in range(middle):
        level, j = divmod(i, width)
        if j == 0 and i:
            previous, layer = layer, []
        name = f"{verbs[level % len(verbs)]}_{level:02d}_{j}"
        deps = sorted({previous[j % len(previous)], previous[(j + 1) % len(previous)]} if j % 3 == 0
                      else {previous[j % len(previous)]})
        out.append({"name": name, "function": functions[(level + j) % len(functions)], "action": "run",
                    "depends_on": deps, "payload_template": {"batch": "{{ batch_id }}", "part": j}})
        layer.append(name)
    out.append({"name": "finish", "function": "catalog", "action": "finish", "depends_on": layer,
                "payload_template": {"batch": "{{ batch_id }}"}})
    return {"name": BIG_WORKFLOW, "description": "A long import (benchmark of the run detail)",
            "required_fields": ["batch_id"], "steps": out}


# ---- inputs ---------------------------------------------------------------------------------


def make_input(flow: int, n: int, rng: random.Random) -> dict[str, Any]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first}.{last}{n % 997}@{rng.choice(DOMAINS)}"
    text = rng.choice(TEXTS)
    name = FLOW[flow].name
    if name == "user-signup":
        return {"user_id": f"usr_{n:08d}", "email": email, "name": f"{first.title()} {last.title()}",
                "plan": rng.choice(["free", "free", "pro", "team"])}
    if name == "order-fulfilment":
        return {"order_id": f"ord_{n:08d}", "email": email, "phone": f"+49151{rng.randrange(10**7):07d}",
                "note": text}
    if name == "invoice-payment":
        return {"invoice_id": f"inv_{n:08d}", "email": email, "amount_cents": rng.randrange(500, 250_000),
                "description": text}
    if name == "record-sync":
        return {"table": rng.choice(["listing", "proposal", "user"]), "record_id": f"rec_{n:08d}",
                "email": email, "change": text}
    return {"document_id": f"doc_{n:08d}", "email": email, "title": text}


def output_of(function: str, run_id: uuid.UUID, step: str) -> dict[str, Any]:
    ref = run_id.hex[-10:]
    if function == "send-email":
        return {"message_id": f"msg_{ref}", "status": "sent"}
    if function == "payments":
        return {"charge_id": f"ch_{ref}", "status": "succeeded"}
    if function == "inventory":
        return {"reservation_id": f"res_{ref}"}
    if function == "ai-classify":
        return {"label": "contract", "confidence": 0.93}
    return {"ok": True, "ref": f"{step}_{ref}"}


# ---- plans and answers ----------------------------------------------------------------------


@dataclass
class Plan:
    """What happens to one run: its answers are decided when its steps are claimed."""

    flow: int
    fail_step: str | None = None  # this step dies (the run fails)
    sms_fails: bool = False  # order-fulfilment: sms fails, the run goes on
    transient: bool = False  # the first attempt of its first step answers 503, the retry succeeds
    cancel_late: bool = False  # cancelled when a step after its first is claimed


COMPLETE, LEAVE, CANCEL = "complete", "leave", "cancel"
Action = str | tuple[int, bool, str, int | None]  # or a failure: (http status, retryable, error, retry after)
Decide = Callable[[Plan | None, str, int], Action]


def finish(plan: Plan | None, step: str, attempt: int) -> Action:
    """The finished population: every run reaches the end its plan says."""
    if plan is None:
        return LEAVE  # not ours (another population's open run): left as it is
    flow = FLOW[plan.flow]
    if plan.cancel_late and (step not in flow.first or len(flow.steps) == 1):
        return CANCEL
    if step == plan.fail_step:
        status, retryable, error = ERRORS[(flow.name, step)]
        return (status, retryable, error, None)
    if plan.sms_fails and step == "sms":
        return (*SMS_FAILED, None)
    if plan.transient and attempt == 1 and step in flow.first:
        return (*TRANSIENT, None)
    return COMPLETE


# deadlock victims and serialization failures are rolled back whole: the statement is sent again
RETRIED = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


class Shared:
    """What the lanes share: the stages, and the plan of every run being generated (a lane may
    claim and answer another lane's steps: claims read whole stages)."""

    def __init__(self) -> None:
        self.stages: dict[str, str] = {}  # stage name -> queue
        self.functions: dict[tuple[str, str], str] = {}  # (workflow, step) -> function
        self.plans: dict[uuid.UUID, Plan] = {}
        self.counter = 0  # numbers the inputs' ids
        self.columns: dict[str, list[str]] = {}  # timestamptz columns of the tables back-dated

    def stage_order(self, workflows: set[str]) -> list[str]:
        """The stages of these workflows, in the order their steps first appear (fewer passes)."""
        ordered: list[str] = []
        for d in FLOWS:
            if d["name"] in workflows:
                for s in d["steps"]:
                    stage = s.get("function", "_wf")
                    if stage not in ordered:
                        ordered.append(stage)
        for (w, _), stage in sorted(self.functions.items()):
            if w in workflows and stage not in ordered:
                ordered.append(stage)
        return ordered


class Lane:
    """One connection generating: enqueues, claims and answers, back-dates."""

    def __init__(self, conn: asyncpg.Connection, shared: Shared, seed: int) -> None:
        self.conn = conn
        self.shared = shared
        self.rng = random.Random(seed)

    async def call(self, method: str, query: str, *args: Any) -> Any:
        for attempt in range(10):
            try:
                return await getattr(self.conn, method)(query, *args)
            except RETRIED:
                if attempt == 9:
                    raise
                await asyncio.sleep(0.02 * (attempt + 1))
        return None

    async def define(self, definitions: Sequence[dict[str, Any]]) -> None:
        for d in definitions:
            await self.conn.fetchval("select wf.define($1::jsonb)", d)
            for s in d["steps"]:
                if "function" in s:
                    self.shared.functions[(d["name"], s["name"])] = s["function"]
        self.shared.stages = dict(await self.conn.fetch("select name, queue from wf.stages"))

    # -- enqueue ---------------------------------------------------------------------------------

    def pick_flows(self, count: int, among: Sequence[int] | None = None) -> list[int]:
        among = list(range(len(FLOW))) if among is None else list(among)
        return self.rng.choices(among, weights=[WEIGHTS[i] for i in among], k=count)

    async def enqueue(self, flows: Sequence[int], workflow: str | None = None,
                      input: dict[str, Any] | None = None) -> list[uuid.UUID]:
        """One run per entry of `flows` (indexes into FLOWS), in one statement; ids in order.
        With `workflow`, runs of that one with `input` instead."""
        names, inputs, correlations = [], [], []
        for f in flows:
            self.shared.counter += 1
            n = self.shared.counter
            names.append(workflow or FLOW[f].name)
            inputs.append(input if input is not None else make_input(f, n, self.rng))
            correlations.append(f"cust_{self.rng.randrange(CUSTOMERS):05d}" if self.rng.random() < CORRELATED
                                else None)
        rows = await self.conn.fetch(
            "select u.ord, wf.enqueue(u.workflow, u.input, correlation_id => u.correlation_id) as id "
            "from unnest($1::text[], $2::jsonb[], $3::text[]) with ordinality "
            "as u(workflow, input, correlation_id, ord) "
            "order by u.ord", names, inputs, correlations)
        return [r["id"] for r in rows]

    async def start(self, flows: Sequence[int], plan: Callable[[uuid.UUID, int], Plan],
                    cancel: Callable[[uuid.UUID], bool] = lambda run_id: False) -> list[uuid.UUID]:
        """Enqueues the runs and files their plans, ENQUEUE_BATCH runs per transaction (each holds a
        lock per run until it commits): no lane claims a step of a run without a plan. Runs `cancel`
        picks are cancelled before they start, in the same transaction."""
        ids: list[uuid.UUID] = []
        for i in range(0, len(flows), ENQUEUE_BATCH):
            batch = flows[i:i + ENQUEUE_BATCH]
            async with self.conn.transaction():
                new = await self.enqueue(batch)
                for run_id, f in zip(new, batch, strict=True):
                    self.shared.plans[run_id] = plan(run_id, f)
                stop = sorted(r for r in new if cancel(r))
                if stop:
                    await self.cancel(stop, "cancelled by the user before it started")
            ids += new
        return ids

    # -- claim and answer ------------------------------------------------------------------------

    async def answer(self, rows: Sequence[asyncpg.Record], decide: Decide) -> None:
        done: tuple[list[Any], ...] = ([], [], [], [])
        fails: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
        cancels: list[uuid.UUID] = []
        plans = self.shared.plans
        # in run id order, as wf.claim and wf.complete_batch lock runs: two lanes never deadlock
        for r in sorted(rows, key=lambda r: r["run_id"]):
            run_id, step, attempt = r["run_id"], r["step"], r["attempt"]
            action = decide(plans.get(run_id), step, attempt)
            if action == COMPLETE:
                for values, value in zip(done, (run_id, step, attempt, output_of(r["function"], run_id, step)),
                                         strict=True):
                    values.append(value)
            elif action == CANCEL:
                cancels.append(run_id)
            elif isinstance(action, tuple):
                status, retryable, error, retry_after = action
                for values, value in zip(fails, (run_id, step, attempt, error, retryable, status, retry_after),
                                         strict=True):
                    values.append(value)
        if done[0]:
            await self.call("fetchval", "select wf.complete_batch($1::uuid[], $2::text[], $3::int[], $4::jsonb[])",
                            *done)
        if fails[0]:
            await self.call(
                "execute",
                "select count(wf.fail(u.run_id, u.step, u.attempt, u.error, u.retryable, u.status, u.retry_after)) "
                "from unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::bool[], $6::int[], $7::int[]) "
                "with ordinality as u(run_id, step, attempt, error, retryable, status, retry_after, ord)", *fails)
        if cancels:
            await self.cancel(cancels, "cancelled by the user while a step was running")

    async def cancel(self, run_ids: Sequence[uuid.UUID], reason: str) -> None:
        await self.call("execute", "select count(wf.cancel(r, $2)) from unnest($1::uuid[]) r",
                        sorted(run_ids), reason)

    async def drain_stage(self, stage: str, decide: Decide) -> int:
        """Claims the stage's visible messages and answers them; how many were handled."""
        total = 0
        if stage == "_wf":
            # its messages are handled inside wf.claim and none returned: claim while the queue shrinks
            queue = self.shared.stages[stage]
            length = await self.conn.fetchval("select queue_length from pgmq.metrics($1)", queue)
            while length:
                await self.call("execute", "select count(*) from wf.claim($1, $2)", stage, CLAIM_QTY)
                left = await self.conn.fetchval("select queue_length from pgmq.metrics($1)", queue)
                if left >= length:
                    break
                total += length - left
                length = left
            return total
        while True:
            rows = await self.call("fetch", "select run_id, step, attempt, function from wf.claim($1, $2)",
                                   stage, CLAIM_QTY)
            total += len(rows)
            if rows:
                await self.answer(rows, decide)
            if len(rows) < CLAIM_QTY:
                return total

    async def signal_waiting(self, runs: set[uuid.UUID]) -> int:
        """The `approved` signal for those of `runs` whose approve step waits; how many got it."""
        if not runs:
            return 0
        waiting = await self.conn.fetch(
            "select s.run_id from wf.steps s where s.run_id = any($1::uuid[]) and s.name = 'approve' "
            "and s.status = 'running' order by s.run_id", list(runs))
        ids = [r["run_id"] for r in waiting]
        for i in range(0, len(ids), CLAIM_QTY):
            await self.call("execute", "select count(wf.signal(r, 'approved', jsonb_build_object("
                            "'by', 'reviewer@example.com', 'ok', true))) from unnest($1::uuid[]) r",
                            ids[i:i + CLAIM_QTY])
        runs.difference_update(ids)
        return len(ids)

    async def drain(self, decide: Decide, stages: list[str], signal: Sequence[uuid.UUID] = (),
                    until_final: Sequence[uuid.UUID] = ()) -> int:
        """Passes over the stages until one handles nothing and gives no waiting step its signal
        (`signal`: runs whose `approve` step gets it once it waits) and, with `until_final`, those
        runs are final (another lane may be answering them). Returns the passes."""
        passes = idle = 0
        pending = set(signal)
        while True:
            passes += 1
            handled = 0
            for stage in stages:
                handled += await self.drain_stage(stage, decide)
            handled += await self.signal_waiting(pending)
            if handled:
                idle = 0
                continue
            if not until_final or not await self.conn.fetchval(
                    "select count(*) from wf.runs where id = any($1::uuid[]) "
                    "and status not in ('completed', 'failed', 'cancelled')", list(until_final)):
                return passes
            idle += 1
            if idle > 6000:
                raise SystemExit("gen-runs: runs of a chunk did not finish within a minute of idle passes")
            await asyncio.sleep(0.01)

    # -- back-dating -----------------------------------------------------------------------------

    async def archive_marks(self) -> dict[str, int]:
        """The highest archived message id per queue of our stages (messages after it are new)."""
        marks = {}
        for queue in [*self.shared.stages.values(), "wf_dlq"]:
            marks[queue] = await self.conn.fetchval(f'select coalesce(max(msg_id), 0) from pgmq."a_{queue}"')
        marks["wf_dlq#q"] = await self.conn.fetchval('select coalesce(max(msg_id), 0) from pgmq."q_wf_dlq"')
        return marks

    async def back_date(self, run_ids: Sequence[uuid.UUID], start: datetime, step: timedelta,
                        marks: dict[str, int]) -> None:
        """Moves every timestamp of these runs (ordered by id) so that the k-th was created at
        start + (k + jitter) * step; their steps, events, signals and queue messages move with it."""
        if not self.shared.columns:
            rows = await self.conn.fetch(
                "select table_name, column_name from information_schema.columns "
                "where table_schema = 'wf' and table_name in ('runs', 'steps', 'events', 'signals') "
                "and data_type = 'timestamp with time zone' order by table_name, ordinal_position")
            for r in rows:
                self.shared.columns.setdefault(r["table_name"], []).append(r["column_name"])
        cols = self.shared.columns

        def shifted(table: str, alias: str) -> str:
            return ", ".join(f"{c} = {alias}.{c} + d.delta" for c in cols[table])

        async with self.conn.transaction():
            await self.conn.execute("create temp table if not exists gen_shift (run_id uuid primary key, "
                                    "delta interval not null) on commit delete rows")
            await self.conn.execute(
                "insert into gen_shift select u.id, $2::timestamptz + (u.ord - 1 + random()) * $3::interval "
                "- r.created_at from unnest($1::uuid[]) with ordinality as u(id, ord) join wf.runs r on r.id = u.id",
                sorted(run_ids), start, step)
            await self.conn.execute("analyze gen_shift")
            await self.conn.execute(f"update wf.runs r set {shifted('runs', 'r')} from gen_shift d "
                                    "where r.id = d.run_id")
            await self.conn.execute(f"update wf.steps s set {shifted('steps', 's')} from gen_shift d "
                                    "where s.run_id = d.run_id")
            await self.conn.execute(f"update wf.events e set {shifted('events', 'e')} from gen_shift d "
                                    "where e.run_id = d.run_id")
            await self.conn.execute(f"update wf.signals g set {shifted('signals', 'g')} from gen_shift d "
                                    "where g.run_id = d.run_id")
            for queue in [*self.shared.stages.values(), "wf_dlq"]:
                await self.conn.execute(
                    f'update pgmq."a_{queue}" a set enqueued_at = a.enqueued_at + d.delta, '
                    "archived_at = a.archived_at + d.delta, vt = a.vt + d.delta from gen_shift d "
                    "where a.msg_id > $1 and (a.message ->> 'run_id')::uuid = d.run_id", marks[queue])
            await self.conn.execute(
                'update pgmq."q_wf_dlq" q set enqueued_at = q.enqueued_at + d.delta, vt = q.vt + d.delta, '
                "message = jsonb_set(q.message, '{failed_at}', "
                "to_jsonb((q.message ->> 'failed_at')::timestamptz + d.delta)) "
                "from gen_shift d where q.msg_id > $1 and (q.message ->> 'run_id')::uuid = d.run_id",
                marks["wf_dlq#q"])


# ---- the populations ------------------------------------------------------------------------


def split(total: int, shares: Sequence[float]) -> list[int]:
    """`total` split by `shares` (summing to 1), largest remainders first."""
    raw = [total * s for s in shares]
    out = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: total - sum(out)]:
        out[i] += 1
    return out


async def big_run(lane: Lane, steps: int, at: datetime) -> uuid.UUID:
    marks = await lane.archive_marks()
    [run_id] = await lane.enqueue([0], BIG_WORKFLOW, {"batch_id": f"batch_{lane.shared.counter + 1:06d}",
                                                      "email": "imports@example.com", "source": "supplier feed"})
    lane.shared.plans[run_id] = Plan(flow=0)
    await lane.drain(lambda plan, step, attempt: COMPLETE if plan else LEAVE,
                     lane.shared.stage_order({BIG_WORKFLOW}))
    await lane.back_date([run_id], at, timedelta(seconds=1), marks)
    status, count = await lane.conn.fetchrow(
        "select r.status, (select count(*) from wf.steps s where s.run_id = r.id and s.status = 'succeeded') "
        "from wf.runs r where r.id = $1", run_id)
    if status != "completed" or count != steps:
        raise SystemExit(f"gen-runs: the {steps}-step run ended {status} with {count} steps succeeded")
    return run_id


async def finished_runs(lanes: Sequence[Lane], total: int, end: datetime, chunk: int, started: float) -> None:
    """`total` finished runs in chunks, the lanes taking the next chunk in turn; each chunk is
    back-dated into its slice of [end - 30 days, end)."""
    _, failed_total, cancelled_total = split(total, [COMPLETED, FAILED, 1 - COMPLETED - FAILED])
    step = SPREAD / max(total, 1)
    stages = lanes[0].shared.stage_order({f.name for f in FLOW})
    chunks = iter(range(0, total, chunk))
    progress = {"done": 0}

    def upto(target: int, n: int) -> int:  # the share of target owed by the first n runs
        return round(target * n / total)

    async def one(lane: Lane, first: int) -> None:
        t0 = time.monotonic()
        size = min(chunk, total - first)
        failed = upto(failed_total, first + size) - upto(failed_total, first)
        cancelled = upto(cancelled_total, first + size) - upto(cancelled_total, first)
        early = cancelled // 2  # cancelled before they start; the others with a step in flight
        flows = lane.pick_flows(size)
        fates = ["failed"] * failed + ["early"] * early + ["late"] * (cancelled - early)
        fates += [""] * (size - len(fates))
        lane.rng.shuffle(fates)
        fate = iter(fates)
        early_ids: set[uuid.UUID] = set()

        def plan(run_id: uuid.UUID, f: int) -> Plan:
            p, name, kind = Plan(flow=f), FLOW[f].name, next(fate)
            if kind == "failed":
                p.fail_step = lane.rng.choice(FLOW[f].failable)
            elif kind == "early":
                early_ids.add(run_id)
            elif kind == "late":
                p.cancel_late = True
            else:
                p.sms_fails = name == "order-fulfilment" and lane.rng.random() < CONTINUE_FAILED_SHARE
                p.transient = name in ("invoice-payment", "record-sync") and lane.rng.random() < TRANSIENT_SHARE
            return p

        marks = await lane.archive_marks()
        ids = await lane.start(flows, plan, lambda run_id: run_id in early_ids)
        t1 = time.monotonic()
        signal = [r for r, f in zip(ids, flows, strict=True) if f == DOCUMENT_REVIEW]  # as they wait
        passes = await lane.drain(finish, stages, signal, until_final=ids)
        t2 = time.monotonic()
        await lane.back_date(ids, end - SPREAD + step * first, step, marks)
        for run_id in ids:
            del lane.shared.plans[run_id]
        t3 = time.monotonic()
        progress["done"] += size
        done = progress["done"]
        log(f"finished {done:,}/{total:,} ({done * 100 // total}%): enqueue {t1 - t0:.1f} s, claims and answers "
            f"{t2 - t1:.1f} s ({passes} passes), back-dating {t3 - t2:.1f} s; {t3 - started:,.0f} s in all")

    async def work(lane: Lane) -> None:
        for first in chunks:  # one shared iterator: each chunk goes to one lane
            await one(lane, first)

    async with asyncio.TaskGroup() as group:
        for lane in lanes:
            group.create_task(work(lane))


async def open_runs(lane: Lane, total: int) -> dict[str, int]:
    """`total` runs left open in the states a busy system has; returns how many of each."""
    names = ["waiting for a signal", "past the first step, next running", "first step running", "retrying",
             "past the first step, next queued", "pending"]
    counts = split(total, [0.01, 0.15, 0.25, 0.04, 0.10, 0.45])
    if total >= 10 and counts[0] == 0:
        counts[0], counts[-1] = 1, counts[-1] - 1
    functions = lane.shared.functions
    all_stages = lane.shared.stage_order({f.name for f in FLOW})
    first_stages = {functions[(FLOW[i].name, s)] for i in MULTI_STEP for s in FLOW[i].first}
    later_stages = {functions[(FLOW[i].name, s)] for i in MULTI_STEP for s in FLOW[i].steps
                    if s not in FLOW[i].first and (FLOW[i].name, s) in functions}
    if first_stages & later_stages:  # the "next queued" group claims only first-step stages
        raise SystemExit(f"gen-runs: stages {sorted(first_stages & later_stages)} are both first and later steps")

    async def group(count: int, flows: list[int], decide: Decide, stages: list[str]) -> None:
        if count == 0:
            return
        ids = await lane.start(flows, lambda run_id, f: Plan(flow=f))
        if stages:
            await lane.drain(decide, stages)
        for run_id in ids:
            del lane.shared.plans[run_id]

    def first_then(later: Action) -> Decide:
        def decide(plan: Plan | None, step: str, attempt: int) -> Action:
            if plan is None:
                return LEAVE
            return COMPLETE if step in FLOW[plan.flow].first else later
        return decide

    waiting, next_running, running, retrying, next_queued, pending = counts
    await group(waiting, [DOCUMENT_REVIEW] * waiting, lambda p, s, a: COMPLETE if p else LEAVE, all_stages)
    await group(next_running, lane.pick_flows(next_running, MULTI_STEP), first_then(LEAVE), all_stages)
    await group(running, lane.pick_flows(running), lambda p, s, a: LEAVE, all_stages)
    await group(retrying, lane.pick_flows(retrying), lambda p, s, a: (503, True, TRANSIENT[2], 600) if p else LEAVE,
                all_stages)
    await group(next_queued, lane.pick_flows(next_queued, MULTI_STEP), first_then(LEAVE),
                [s for s in all_stages if s in first_stages])
    await group(pending, lane.pick_flows(pending), lambda p, s, a: LEAVE, [])
    return dict(zip(names, counts, strict=True))


async def summarize_brin(conn: asyncpg.Connection) -> None:
    """Makes wf's BRIN indexes (events_at) again from the rows as they are now. Ranges summarized
    during the generation hold each chunk's events at the time they happened and after back-dating,
    so they would match "the last hour" across the whole table (9x the reads of wf.stage_health's
    scan at 1M runs); production summarizes a range once it is full, of rows in time order. The
    last range is left unsummarized, as the baseline migration leaves it (or every insert updates
    its summary)."""
    rows = await conn.fetch(
        "select i.indexrelid::regclass::text as index, i.indrelid::regclass::text as tbl from pg_index i "
        "join pg_class c on c.oid = i.indexrelid join pg_am a on a.oid = c.relam "
        "where c.relnamespace = 'wf'::regnamespace and a.amname = 'brin'")
    for r in rows:
        await conn.execute(f"reindex index {r['index']}")
        await conn.execute("select brin_desummarize_range($1::regclass, greatest(0, pg_relation_size($2::regclass) "
                           "/ current_setting('block_size')::int - 1))", r["index"], r["tbl"])


@dataclass
class Summary:
    big_run_id: uuid.UUID | None
    finished: int
    running: int
    open_states: dict[str, int]
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    server_cpu: float | None = None  # CPU seconds the PostgreSQL server spent meanwhile (when local)


async def generate(dsn: str, finished: int = 1_000_000, running: int = 50_000, big_steps: int = 200, *,
                   chunk: int = CHUNK, lanes: int = 2, seed: int = 1, vacuum: bool = True) -> Summary:
    """Adds the population to the database at dsn (wf installed): `finished` runs over the last 30
    days, `running` open ones, one completed run of `big_steps` steps (0: none); then vacuum
    analyze. `lanes` connections generate at once. Returns the big run's id and the timings."""
    if not 0 <= big_steps <= 200:
        raise ValueError("big_steps must be between 0 and 200 (wf.define's limit)")
    started = time.monotonic()
    phases: dict[str, float] = {}
    shared = Shared()
    conns = [await db.connect(dsn) for _ in range(max(1, lanes))]
    try:
        backend = await conns[0].fetchval("select pg_backend_pid()")
        cpu0 = server_cpu(backend)
        main = Lane(conns[0], shared, seed)
        workers = [main, *(Lane(c, shared, seed + i) for i, c in enumerate(conns[1:], 1))]
        if await main.conn.fetchval("select to_regclass('wf.runs')") is None:
            raise SystemExit("gen-runs: wf is not installed in this database (wf install --dsn ...)")
        for c in conns:
            await c.execute("set synchronous_commit = off")  # a lost tail on a crash costs nothing here
        shared.counter = await main.conn.fetchval("select count(*) from wf.runs")
        definitions = [*FLOWS, *([big_definition(big_steps)] if big_steps else [])]
        await main.define(definitions)
        end = await main.conn.fetchval("select now()")
        # the definitions were made before the oldest run
        await main.conn.execute("update wf.definitions set created_at = $2 where workflow = any($1::text[]) "
                                "and created_at > $2", [d["name"] for d in definitions],
                                end - SPREAD - timedelta(days=1))
        big = None
        if big_steps:
            t = time.monotonic()
            big = await big_run(main, big_steps, end - timedelta(hours=2))
            phases["big run"] = time.monotonic() - t
            log(f"the {big_steps}-step run {big} completed ({phases['big run']:.1f} s)")
        if finished:
            t = time.monotonic()
            await finished_runs(workers, finished, end, chunk, started)
            phases["finished runs"] = time.monotonic() - t
        states: dict[str, int] = {}
        if running:
            t = time.monotonic()
            states = await open_runs(main, running)
            phases["open runs"] = time.monotonic() - t
            log(f"{running:,} open runs ({phases['open runs']:.1f} s): "
                + ", ".join(f"{n:,} {name}" for name, n in states.items()))
        if vacuum:
            t = time.monotonic()
            await main.conn.execute("vacuum analyze")
            await summarize_brin(main.conn)
            phases["vacuum analyze"] = time.monotonic() - t
            log(f"vacuum analyze, BRIN summaries made again ({phases['vacuum analyze']:.1f} s)")
        cpu1 = server_cpu(backend)
    finally:
        for c in conns:
            await c.close()
    cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return Summary(big, finished, running, states, time.monotonic() - started, phases, cpu)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dsn", required=True, help="a database with wf installed")
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--running", type=int, default=50_000)
    parser.add_argument("--big-steps", type=int, default=200, help="steps of the one big completed run (0: none)")
    parser.add_argument("--chunk", type=int, default=CHUNK, help="finished runs enqueued per statement")
    parser.add_argument("--lanes", type=int, default=2, help="connections generating at once")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 0 <= args.big_steps <= 200:
        parser.error("--big-steps must be between 0 and 200 (wf.define's limit)")
    summary = await generate(args.dsn, args.finished, args.running, args.big_steps, chunk=args.chunk,
                             lanes=args.lanes, seed=args.seed)
    phases = ", ".join(f"{name} {seconds:,.0f} s" for name, seconds in summary.phases.items())
    rate = (summary.finished + summary.running) / summary.seconds
    cpu = "" if summary.server_cpu is None else (
        f"; PostgreSQL CPU {summary.server_cpu:,.0f} s = "
        f"{summary.server_cpu * 1000 / max(summary.finished + summary.running, 1):.2f} ms per run")
    print(f"gen-runs: {summary.finished:,} finished and {summary.running:,} open runs in {summary.seconds:,.0f} s "
          f"({rate:,.0f} runs/s; {phases}{cpu}); big run {summary.big_run_id}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
