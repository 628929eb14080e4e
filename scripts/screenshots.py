"""The README's dashboard screenshots (run by scripts/screenshots, which starts PostgreSQL, the functions,
a worker and the dashboard and defines templates/): a realistic mix of runs made through wf's SQL API
over a few minutes — so the stage charts have more than one minute — then one PNG per page, 1400 px wide,
taken by Debian's chromium through Playwright.

The mix: proposals, sign-ups (a child workflow each), published listings (a map over channels), orders
fanned out, notifications with a fallback, external syncs, completed checkouts (a small workflow of this
script, defined in two versions), two checkouts that fail (a card in a currency that does not exist, an
amount of 0) next to a text message to a phone number that is not one, a booking whose host declines (its
charge refunded, compensate), listings waiting for a moderator (some then approved or rejected by signal,
one left waiting), a reminder 24 h away, a meeting in three days, a paused run. The send-email stage is
paused for the first half (its depth rises, then falls) and sms is limited.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from playwright.sync_api import sync_playwright
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

FINAL = ("completed", "failed", "cancelled", "compensation_failed")
FIRST_NAMES = ["Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Edsger", "Frances", "Ken", "Radia"]
CHANNELS = ["partner-feed", "newsletter", "social", "search-ads"]


def checkout(version: int) -> dict[str, Any]:
    """This script's own workflow: reserve, charge, text, email, (v2: track). Version 2 retries the card
    charge less patiently, sends the receipt with another template and tracks the order."""
    steps: list[dict[str, Any]] = [
        {"name": "reserve_stock", "function": "proposal", "action": "reserve",
         "payload_template": {"orderId": "{{ order_id }}"}},
        {"name": "charge_card", "function": "payments", "action": "charge", "depends_on": ["reserve_stock"],
         "max_retries": 4 if version == 1 else 2,
         "payload_template": {"bookingId": "{{ order_id }}", "guestId": "{{ guest_id }}",
                              "amount": "{{ amount_cents }}", "currency": "{{ currency | default('EUR') }}"}},
        {"name": "text_update", "function": "sms", "action": "send", "depends_on": ["reserve_stock"],
         "on_failure": "continue", "max_retries": 1,
         "payload_template": {"to": "{{ phone }}", "text": "Order {{ order_id }}: we are packing it"}},
        {"name": "email_receipt", "function": "send-email", "action": "send",
         "depends_on": ["charge_card", "text_update"],
         "payload_template": {"template_id": "receipt" if version == 1 else "receipt_v2",
                              "recipient_email": "{{ email }}",
                              "variables": {"order_id": "{{ order_id }}",
                                            "charge_id": "{{ steps.charge_card.output.charge_id }}"}}},
    ]
    if version >= 2:
        steps.append({"name": "track", "function": "analytics", "action": "track", "depends_on": ["email_receipt"],
                      "payload_template": {"event": "order_paid", "userId": "{{ guest_id }}",
                                           "properties": {"sms": "{{ steps.text_update.status }}"}}})
    return {"name": "checkout", "description": "An order is paid: reserve the stock, charge the card, text the "
            "guest, email the receipt" + (", track it" if version >= 2 else ""),
            "required_fields": ["order_id", "guest_id", "email", "phone", "amount_cents"],
            "max_retries": 3, "backoff": {"delays": [1, 2, 4]}, "steps": steps}


class Seeder:
    def __init__(self, dsn: str, seed: int) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
        self.rng = random.Random(seed)
        self.n = 0
        self.open_on_purpose: set[str] = set()
        self.special: dict[str, str] = {}

    def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        cur = self.conn.execute(query, args)
        return cur.fetchall() if cur.description else []

    def enqueue(self, workflow: str, data: dict[str, Any], correlation_id: str | None = None) -> str:
        self.n += 1
        [row] = self.sql("select wf.enqueue(%s, %s, correlation_id => %s)::text as id", workflow, Jsonb(data),
                         correlation_id)
        return row["id"]

    def person(self) -> tuple[str, str]:
        name = self.rng.choice(FIRST_NAMES)
        return name, f"{name.lower()}{self.rng.randint(1, 99)}@example.com"

    def phone(self) -> str:
        return f"+1415555{self.rng.randint(1000, 9999)}"

    # ---- the ordinary traffic of one wave ----

    def wave(self, i: int) -> None:
        rng = self.rng
        for k in range(rng.randint(2, 5)):
            guest, _ = self.person()
            pid = f"p-{400 + i * 10 + k}"
            self.enqueue("proposal-created", {
                "proposal_id": pid, "guest_id": f"g-{rng.randint(1, 80)}", "host_id": f"h-{rng.randint(1, 20)}",
                "listing_id": f"l-{rng.randint(1, 60)}", "status": "pending", "host_email": "host@example.com",
                "guest_name": guest, "listing_name": rng.choice(["Loft by the river", "Cabin in the woods",
                                                                 "Studio near the station"])}, f"proposal-{pid}")
        first, email = self.person()
        self.enqueue("user-signup", {"email": email, "first_name": first, "last_name": "Example",
                                     "source": rng.choice(["web", "ios", "android"])}, f"signup-{email}")
        listing = f"l-{100 + i}"
        self.enqueue("listing-published", {"listing_id": listing, "host_id": f"h-{rng.randint(1, 20)}",
                                           "host_email": "host@example.com",
                                           "channels": rng.sample(CHANNELS, rng.randint(2, 4))}, f"listing-{listing}")
        order = f"o-{700 + i}"
        self.enqueue("order-fulfilment", {"order_id": order, "email": email, "phone": self.phone()}, f"order-{order}")
        self.enqueue("notify-with-fallback", {"user_id": f"g-{i}", "phone": self.phone() if i % 3 else "n/a",
                                              "email": email, "text": "Your keys are ready"})
        self.enqueue("external-sync", {"table": "listing", "record_id": f"l-{rng.randint(1, 60)}",
                                       "fields": {"price": rng.randint(60, 240)}})
        for _ in range(rng.randint(1, 3)):
            self.checkout_run()

    def checkout_run(self, **override: Any) -> str:
        _, email = self.person()
        order = override.pop("order_id", f"o-{1000 + self.n}")
        data = {"order_id": order, "guest_id": f"g-{self.rng.randint(1, 80)}", "email": email,
                "phone": self.phone(), "amount_cents": self.rng.randint(1500, 42000), **override}
        return self.enqueue("checkout", data, f"order-{order}")

    # ---- the runs the screenshots are about (last: the newest, at the top of the run list) ----

    def specials(self) -> None:
        for k in range(3):
            run = self.enqueue("listing-approval", {"listing_id": f"l-{77 + k}", "host_id": "h-3",
                                                    "host_email": "host@example.com"}, f"moderation-l-{77 + k}")
            self.special[f"approval-{k}"] = run
        self.special["declined"] = self.enqueue("booking-payment", {
            "booking_id": "b-9", "guest_id": "g-1", "guest_email": "grace@example.com", "amount_cents": 42000,
            "fail_confirmation": True}, "booking-b-9")
        reminder = self.enqueue("booking-reminder", {"booking_id": "b-5", "guest_email": "grace@example.com"})
        meeting = self.enqueue("virtual-meeting-accepted", {
            "meeting_id": "vm-8", "host_id": "h-1", "guest_id": "g-1", "guest_email": "grace@example.com",
            "guest_phone": "+14155550100", "thread_id": "t-1",
            "starts_at": (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")}, "meeting-vm-8")
        self.open_on_purpose |= {reminder, meeting}
        self.checkout_run(order_id="o-1338", amount_cents=0)
        self.checkout_run()
        paused = self.checkout_run(order_id="o-1339")
        self.sql("select wf.pause(%s::uuid)", paused)
        self.open_on_purpose.add(paused)
        self.special["failed"] = self.checkout_run(order_id="o-1337", currency="EURO", phone="ask at the desk")
        self.checkout_run()

    def signals(self) -> None:
        """Two moderators decide; the third listing still waits for one."""
        waiting = [self.special[f"approval-{k}"] for k in range(3)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = self.sql("select run_id::text as id from wf.run_steps where run_id = any(%s::uuid[]) "
                            "and name = 'review' and status = 'running'", waiting)
            if len(rows) == 3:
                break
            time.sleep(0.2)
        self.sql("select wf.signal(%s::uuid, 'moderated', %s)", waiting[0], Jsonb({"approved": True, "by": "mod-1"}))
        self.sql("select wf.signal(%s::uuid, 'moderated', %s)", waiting[1],
                 Jsonb({"approved": False, "by": "mod-2", "reason": "photos missing"}))
        self.open_on_purpose.add(waiting[2])

    def tick(self) -> None:
        self.sql("select wf.tick()")

    def wait_settled(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.sql("select id::text as id, workflow, status from wf.runs where status <> all(%s)",
                            list(FINAL))
            left = [r for r in rows if r["id"] not in self.open_on_purpose
                    and r["workflow"] not in ("booking-reminder",)]
            if not left:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"screenshots: {len(left)} runs did not end: {left[:5]}")
            time.sleep(0.5)


def seed(dsn: str, minutes: float) -> Seeder:
    s = Seeder(dsn, seed=13)
    s.sql("select wf.define(%s)", Jsonb(checkout(1)))
    s.sql("select wf.pause_stage('send-email')")
    s.sql("select wf.configure_stage('sms', max_concurrency => 4, rate_per_second => 20)")
    waves = max(2, round(minutes * 60 / 20))
    started = time.monotonic()
    for i in range(waves):
        s.wave(i)
        if i == waves // 2:
            s.sql("select wf.define(%s)", Jsonb(checkout(2)))
        if i == (waves * 5) // 9:
            s.sql("select wf.resume_stage('send-email')")
        s.tick()
        print(f"   wave {i + 1}/{waves}: {s.n} runs", flush=True)
        time.sleep(max(0.0, started + (i + 1) * 20 - time.monotonic()))
    s.sql("select wf.resume_stage('send-email')")
    s.specials()
    s.signals()
    s.wait_settled()
    time.sleep(max(0.0, started + waves * 20 + 11 - time.monotonic()))  # tick samples at most every 30 s
    s.tick()
    return s


def shoot(url: str, token: str, out: Path, s: Seeder) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--headless"])
        context = browser.new_context(viewport={"width": 1400, "height": 900}, device_scale_factor=1)
        # signed in (the action buttons show); POST /login directly: its page is not needed for that
        answer = context.request.post(f"{url}/login", form={"token": token, "next": "/runs"}, max_redirects=0)
        assert answer.status == 303, (answer.status, answer.text()[:300])
        page = context.new_page()

        def take(path: str, name: str, height: int, ready: str, full_page: bool = False) -> None:
            page.set_viewport_size({"width": 1400, "height": height})
            page.goto(f"{url}{path}")
            page.wait_for_selector(ready)
            page.wait_for_timeout(300)
            target = out / name
            page.screenshot(path=str(target), full_page=full_page)
            print(f"   {target} ({target.stat().st_size // 1024} KB)", flush=True)

        take("/runs", "dashboard-runs.png", 1000, "tr[data-run]")
        take(f"/runs/{s.special['failed']}", "dashboard-run.png", 1250, "svg#graph g.node")
        take("/stages", "dashboard-stages.png", 900, ".chart .uplot", full_page=True)  # every chart
        take("/workflows/checkout?a=1&b=2", "dashboard-workflow.png", 1100, "table.diff")
        take("/dead-letters", "dashboard-dead-letters.png", 600, "table.dead tr[data-run]")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--dashboard-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the traffic runs (the charts' span)")
    args = parser.parse_args()
    print(f"== runs for {args.minutes:g} min (a wave every 20 s, wf.tick after each)", flush=True)
    s = seed(args.dsn, args.minutes)
    print(f"== {s.n} runs; screenshots into {args.out}/", flush=True)
    shoot(args.dashboard_url, args.token, args.out, s)


if __name__ == "__main__":
    main()
